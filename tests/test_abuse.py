"""Abuse resistance: rate limits and their Redis fallback, the hourly confirmation cap, honeypot and form tokens,
the optional captcha, the purge of unconfirmed signups, and the Content-Security-Policy."""
from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from mailer import config, tokens
from mailer.extensions import db, limiter
from mailer.models import Consent, Delivery, Download, Subscriber, utcnow
from mailer.people import confirmation_cap
from mailer.people.housekeeping import purge_unconfirmed
from mailer.tasks import beat_schedule
from mailer.web import captcha
from mailer.web.embed_snippets import snippets
from tests.conftest import IN_CI, app_with
from tests.smtp_sink import _free_port

BLOG = "https://blog.example.com"
THANKS = {"status": "ok", "message": "Thanks! Check your inbox and click the link in our email to confirm."}


# --- helpers ---------------------------------------------------------------------------------------

@contextmanager
def fresh_app(tmp_path, sqlite_template, **overrides):
    """An app with its own settings on a copy of the migrated database; the shared limiter starts healthy."""
    limiter._storage_dead = False  # one Limiter serves every app in this process: forget an earlier test's outage
    try:
        with app_with(tmp_path, sqlite_template, **overrides) as app:
            yield app
    finally:
        limiter._storage_dead = False


def counts() -> tuple[int, int, int]:
    db.session.rollback()  # read what the requests committed, not an older snapshot
    return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (Subscriber, Consent, Delivery))


def form_token(age: float) -> str:
    """A form token as if the form had been rendered `age` seconds ago."""
    return tokens.make(tokens.FORM, {"at": time.time() - age})


def limited(**extra) -> dict:
    return {"RATELIMIT_ENABLED": True, "SIGNUP_RATE_LIMIT": "2/minute", **extra}


# --- 1. rate limits --------------------------------------------------------------------------------

def test_the_429_says_when_to_retry_and_comes_before_any_write(tmp_path, sqlite_template, monkeypatch):
    woken = []
    monkeypatch.setattr("mailer.outbox.ledger.wake", lambda: woken.append(1))
    with fresh_app(tmp_path, sqlite_template, **limited()) as app:
        client = app.test_client()
        assert [client.post("/subscribe", json={"email": f"a{i}@example.com"}).status_code for i in range(2)] == [202, 202]
        before, wakes = counts(), len(woken)

        refused = [client.post("/subscribe", json={"email": "b@example.com"}),
                   client.post("/subscribe", data={"email": "c@example.com", "form": "iframe"})]

        for response in refused:
            assert response.status_code == 429
            assert 0 < int(response.headers["Retry-After"]) <= 60
        assert counts() == before == (2, 2, 2)
        assert len(woken) == wakes  # no worker woken: no mail


def test_refused_signups_count_toward_the_limit_too(tmp_path, sqlite_template):
    # Otherwise one address could try captchas, or probe the form, without end.
    with fresh_app(tmp_path, sqlite_template, **limited()) as app:
        client = app.test_client()
        assert client.post("/subscribe", json={"email": "not-an-address"}).status_code == 422
        assert client.post("/subscribe", data=b"{broken", content_type="application/json").status_code == 400
        assert client.post("/subscribe", json={"email": "ann@example.com"}).status_code == 429


def test_a_redis_that_stops_answering_costs_a_signup_a_second_not_more(tmp_path, sqlite_template, caplog):
    """A Redis that accepts connections but never replies (hung, or a black hole on the network)."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        black_hole = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        with fresh_app(tmp_path, sqlite_template, **limited(RATELIMIT_STORAGE_URI=black_hole)) as app:
            started = time.monotonic()
            assert app.test_client().post("/subscribe", json={"email": "ann@example.com"}).status_code == 202
            assert time.monotonic() - started < 3
            assert any("falling back to in-memory" in r.getMessage() for r in caplog.records)
    finally:
        silent.close()


def test_a_closed_redis_port_falls_back_to_memory_with_a_warning(tmp_path, sqlite_template, caplog):
    closed = f"redis://127.0.0.1:{_free_port()}/0"
    with fresh_app(tmp_path, sqlite_template, **limited(RATELIMIT_STORAGE_URI=closed)) as app:
        client = app.test_client()
        started = time.monotonic()
        codes = [client.post("/subscribe", json={"email": f"a{i}@example.com"}).status_code for i in range(3)]

        assert codes == [202, 202, 429]  # still limited, per process
        assert time.monotonic() - started < 5
        assert any(r.levelno == logging.WARNING and "falling back to in-memory" in r.getMessage() for r in caplog.records)


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of our own on a free port, which the test may stop."""
    if not shutil.which("redis-server"):
        (pytest.fail if IN_CI else pytest.skip)("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield process, f"redis://127.0.0.1:{port}/0"
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(10)


def test_limits_live_in_redis_and_survive_it_going_away(tmp_path, sqlite_template, private_redis, caplog):
    import redis

    process, url = private_redis
    with fresh_app(tmp_path, sqlite_template, **limited(RATELIMIT_STORAGE_URI=url, SIGNUP_RATE_LIMIT="3/minute")) as app:
        client = app.test_client()
        assert client.post("/subscribe", json={"email": "a@example.com"}).status_code == 202
        with redis.Redis.from_url(url) as store:
            assert store.dbsize() > 0  # the count is in Redis, shared by every web process

        process.terminate()
        process.wait(10)
        codes = [client.post("/subscribe", json={"email": f"b{i}@example.com"}).status_code for i in range(4)]

        assert codes == [202, 202, 202, 429]  # a fresh count in memory, still enforced
        assert any("falling back to in-memory" in r.getMessage() for r in caplog.records)
        assert counts()[0] == 4


def test_behind_a_trusted_proxy_the_client_ip_comes_from_x_forwarded_for(tmp_path, sqlite_template):
    with fresh_app(tmp_path, sqlite_template, **limited(TRUSTED_PROXIES=1, SIGNUP_RATE_LIMIT="1/minute")) as app:
        client = app.test_client()
        proxy = {"REMOTE_ADDR": "10.0.0.2"}
        first = client.post("/subscribe", json={"email": "a@example.com"}, environ_base=proxy,
                            headers={"X-Forwarded-For": "203.0.113.7"})
        # A client may send its own X-Forwarded-For; the proxy appends the real address, and that one counts.
        second = client.post("/subscribe", json={"email": "b@example.com"}, environ_base=proxy,
                             headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.9"})
        again = client.post("/subscribe", json={"email": "c@example.com"}, environ_base=proxy,
                            headers={"X-Forwarded-For": "1.2.3.4, 203.0.113.7"})

        assert (first.status_code, second.status_code, again.status_code) == (202, 202, 429)
        assert sorted(db.session.scalars(select(Consent.ip))) == ["198.51.100.9", "203.0.113.7"]


def test_without_trusted_proxies_a_spoofed_x_forwarded_for_is_ignored(tmp_path, sqlite_template):
    with fresh_app(tmp_path, sqlite_template, **limited(TRUSTED_PROXIES=0, SIGNUP_RATE_LIMIT="1/minute")) as app:
        client = app.test_client()
        codes = [client.post("/subscribe", json={"email": f"a{i}@example.com"}, headers={"X-Forwarded-For": f"203.0.113.{i}"},
                             environ_base={"REMOTE_ADDR": "192.0.2.1"}).status_code for i in range(3)]

        assert codes == [202, 429, 429]
        assert list(db.session.scalars(select(Consent.ip))) == ["192.0.2.1"]


# --- 2. the hourly cap on confirmation mails ---------------------------------------------------------

def confirmations() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.kind == "confirmation"))


def whole_cap(cap: int) -> dict:
    """A cap these tests' one client (127.0.0.1) may take whole: the share of one network is tested apart."""
    return {"CONFIRMATION_HOURLY_CAP": cap, "CONFIRMATION_NETWORK_SHARE": 1.0}


def test_the_hourly_cap_stops_confirmations_with_one_error_line(tmp_path, sqlite_template, caplog, monkeypatch):
    monkeypatch.setattr(confirmation_cap, "_last_alarm", None)
    with fresh_app(tmp_path, sqlite_template, **whole_cap(3)) as app:
        client = app.test_client()
        answers = [client.post("/subscribe", json={"email": f"a{i}@example.com"}) for i in range(6)]

        assert all(a.status_code == 202 and a.json == THANKS for a in answers)  # the visitor sees nothing
        assert counts()[:2] == (6, 6) and confirmations() == 3
        alarms = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(alarms) == 1 and "CONFIRMATION_HOURLY_CAP" in alarms[0].getMessage()

        db.session.execute(update(Delivery).values(created_at=utcnow() - timedelta(minutes=61)))
        db.session.commit()
        monkeypatch.setattr(confirmation_cap, "RECOUNT_SECONDS", 0)  # as a second later: counted again
        assert client.post("/subscribe", json={"email": "later@example.com"}).status_code == 202
        assert confirmations() == 4  # a new hour: confirmations flow again


def test_confirmations_queued_half_an_hour_ago_still_count_toward_the_cap(tmp_path, sqlite_template, caplog,
                                                                         monkeypatch):
    monkeypatch.setattr(confirmation_cap, "_last_alarm", None)
    monkeypatch.setattr(confirmation_cap, "RECOUNT_SECONDS", 0)  # every signup counts afresh from the ledger
    with fresh_app(tmp_path, sqlite_template, **whole_cap(3)) as app:
        client = app.test_client()
        for i in range(3):
            assert client.post("/subscribe", json={"email": f"a{i}@example.com"}).status_code == 202
        db.session.execute(update(Delivery).values(created_at=utcnow() - timedelta(minutes=30)))
        db.session.commit()

        assert client.post("/subscribe", json={"email": "late@example.com"}).status_code == 202
        assert confirmations() == 3
        assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_under_a_flood_the_cap_is_counted_once_a_second(tmp_path, sqlite_template):
    from sqlalchemy import event

    with fresh_app(tmp_path, sqlite_template, **whole_cap(2)) as app:
        client, counts_made = app.test_client(), []
        event.listen(db.engine, "before_cursor_execute", lambda *args: counts_made.extend(
            ["count"] if "count(" in args[2] and "confirmation:%" in args[2] else []))
        for i in range(4):
            assert client.post("/subscribe", json={"email": f"a{i}@example.com"}).status_code == 202
        assert confirmations() == 2
        assert counts_made == ["count"]  # by the first signup; the others add to what it found


def test_a_cap_of_zero_means_no_cap(tmp_path, sqlite_template):
    with fresh_app(tmp_path, sqlite_template, CONFIRMATION_HOURLY_CAP=0) as app:
        for i in range(4):
            app.test_client().post("/subscribe", json={"email": f"a{i}@example.com"})
        assert confirmations() == 4


def test_the_cap_counts_no_further_than_the_cap(app):
    statements = []
    from sqlalchemy import event

    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        confirmation_cap.allows_confirmation(db.session)
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert any("LIMIT" in s and "created_at" in s and "delivery" in s for s in statements)


# --- 3. honeypot and form tokens -------------------------------------------------------------------

def bot_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "treated as a bot" in r.getMessage() and r.levelno == logging.INFO]


@pytest.mark.parametrize("how", ["honeypot", "young", "forged", "other purpose"])
def test_a_bot_gets_the_normal_answer_and_nothing_happens(client, caplog, how):
    caplog.set_level(logging.INFO)
    token = {"honeypot": form_token(60), "young": form_token(0.2),
             "forged": form_token(60)[:-3] + "abc", "other purpose": tokens.make(tokens.CONFIRM, {"at": 0})}[how]
    body = {"email": "bot@example.com", "form_token": token, "website": "https://spam.example" if how == "honeypot" else ""}

    as_json = client.post("/subscribe", json=body)
    as_iframe = client.post("/subscribe", data={**body, "email": "bot2@example.com", "form": "iframe"})
    person = client.post("/subscribe", data={"email": "person@example.com", "form": "iframe", "form_token": form_token(30)})

    assert (as_json.status_code, as_json.json) == (202, THANKS)
    assert (as_iframe.status_code, as_iframe.data) == (person.status_code, person.data)
    assert counts() == (1, 1, 1)  # the person only
    assert len(bot_lines(caplog)) == 2


def test_a_form_left_open_too_long_is_served_afresh_with_a_word_and_nothing_stored(client):
    stale = {"email": "slow@example.com", "form_token": form_token(3 * 3600)}

    as_json = client.post("/subscribe", json=stale)
    as_iframe = client.post("/subscribe", data={**stale, "form": "iframe"})

    assert as_json.status_code == 400 and as_json.json["field"] == "form" and "submit it again" in as_json.json["error"]
    assert as_iframe.status_code == 400 and b"submit it again" in as_iframe.data
    fresh = re.search(rb'name="form_token" value="([^"]+)"', as_iframe.data).group(1).decode()
    assert fresh != stale["form_token"]  # the page it answers with carries a new token
    assert counts() == (0, 0, 0)


def test_a_honeypot_filled_snippet_form_is_redirected_as_usual(client):
    response = client.post("/subscribe", data={"email": "bot@example.com", "website": "x", "next": BLOG + "/thanks"})

    assert response.status_code == 303 and response.location == BLOG + "/thanks"
    assert counts() == (0, 0, 0)


def test_a_form_without_a_token_is_judged_by_the_honeypot_alone(client):
    """The plain HTML snippet is static: it cannot carry a token."""
    response = client.post("/subscribe", data={"email": "reader@example.com", "website": ""})

    assert response.status_code == 200
    assert counts() == (1, 1, 1)


def test_a_token_just_past_the_minimum_is_a_person(client):
    assert client.post("/subscribe", json={"email": "ann@example.com", "form_token": form_token(2.5)}).status_code == 202
    assert counts() == (1, 1, 1)


def test_the_embed_carries_a_fresh_uncached_token_and_posting_it_at_once_is_a_bot(client):
    page = client.get("/embed")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)

    assert page.headers["Cache-Control"] == "no-store"
    assert 'name="website"' in page.text
    client.post("/subscribe", data={"email": "quick@example.com", "form": "iframe", "form_token": token})
    assert counts() == (0, 0, 0)


def test_a_signup_error_page_keeps_the_token_it_was_sent(client):
    token = form_token(30)
    response = client.post("/subscribe", data={"email": "not an address", "form_token": token})

    assert response.status_code == 422
    assert f'name="form_token" value="{token}"' in response.text


def test_embed_js_gets_its_token_from_the_token_endpoint(client):
    script = client.get("/embed.js").text
    answer = client.get("/embed/token", headers={"Origin": BLOG})
    stranger = client.get("/embed/token", headers={"Origin": "https://evil.example"})

    assert '"http://mailer.test/embed/token"' in script and "form_token" in script
    assert "setAttribute(\"style\"" not in script  # styles go through the CSSOM, which a strict CSP allows
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Access-Control-Allow-Origin"] == BLOG
    assert "Access-Control-Allow-Origin" not in stranger.headers
    assert tokens.read(tokens.FORM, answer.json["token"])["at"] > time.time() - 5


def test_form_token_settings_are_checked(tmp_path):
    loaded = config.load({"MAILER_INSTANCE": str(tmp_path)})
    assert (loaded["FORM_MIN_SECONDS"], loaded["FORM_MAX_SECONDS"], loaded["CONFIRMATION_HOURLY_CAP"],
            loaded["UNCONFIRMED_PURGE_DAYS"], loaded["CAPTCHA_PROVIDER"]) == (2, 7200, 500, 7, None)
    for env, name in [({"FORM_MIN_SECONDS": "10", "FORM_MAX_SECONDS": "5"}, "FORM_MAX_SECONDS"),
                      ({"CONFIRMATION_HOURLY_CAP": "-1"}, "CONFIRMATION_HOURLY_CAP"),
                      ({"UNCONFIRMED_PURGE_DAYS": "soon"}, "UNCONFIRMED_PURGE_DAYS"),
                      ({"CAPTCHA_PROVIDER": "recaptcha"}, "CAPTCHA_PROVIDER"),
                      ({"CAPTCHA_PROVIDER": "turnstile", "CAPTCHA_SITE_KEY": "k"}, "CAPTCHA_SECRET")]:
        with pytest.raises(config.ConfigError, match=name):
            config.load({"MAILER_INSTANCE": str(tmp_path), **env})


# --- 4. the optional captcha ---------------------------------------------------------------------------

TURNSTILE = {"CAPTCHA_PROVIDER": "turnstile", "CAPTCHA_SITE_KEY": "site-key-1", "CAPTCHA_SECRET": "secret-1"}
HCAPTCHA = {"CAPTCHA_PROVIDER": "hcaptcha", "CAPTCHA_SITE_KEY": "site-key-2", "CAPTCHA_SECRET": "secret-2"}


@pytest.fixture
def siteverify(monkeypatch):
    """The provider's answer, set by the test; the calls made are recorded (the provider is off this machine)."""
    calls, answer = [], {"value": {"success": True}}

    def fake(url, form, timeout):
        calls.append((url, form, timeout))
        if isinstance(answer["value"], Exception):
            raise answer["value"]
        return answer["value"]

    monkeypatch.setattr(captcha, "post_siteverify", fake)
    return calls, answer


def test_the_captcha_widget_is_rendered_and_allowed_by_the_csp(tmp_path, sqlite_template):
    with fresh_app(tmp_path, sqlite_template, **TURNSTILE) as app:
        client = app.test_client()
        page, script = client.get("/embed"), client.get("/embed.js").text

        assert '<div class="cf-turnstile" data-sitekey="site-key-1">' in page.text
        assert '<script src="https://challenges.cloudflare.com/turnstile/v0/api.js" async defer>' in page.text
        assert "https://challenges.cloudflare.com/turnstile/v0/api.js" in script and "site-key-1" in script
        plain = snippets(app.config["BASE_URL"])["HTML form (works without JavaScript)"]
        assert '<div class="cf-turnstile" data-sitekey="site-key-1"></div>' in plain
        csp = page.headers["Content-Security-Policy"]
        for directive in ("script-src", "frame-src", "style-src"):
            assert re.search(rf"{directive} 'self' https://challenges\.cloudflare\.com", csp)
        assert "secret-1" not in page.text + script


def test_a_passed_captcha_lets_the_signup_through(tmp_path, sqlite_template, siteverify):
    calls, _ = siteverify
    with fresh_app(tmp_path, sqlite_template, **TURNSTILE) as app:
        response = app.test_client().post("/subscribe", data={"email": "ann@example.com", "cf-turnstile-response": "tok"},
                                          environ_base={"REMOTE_ADDR": "198.51.100.3"})

        assert response.status_code == 200 and counts() == (1, 1, 1)
        assert calls == [("https://challenges.cloudflare.com/turnstile/v0/siteverify",
                          {"secret": "secret-1", "response": "tok", "remoteip": "198.51.100.3"}, 5)]


def test_hcaptcha_is_verified_with_its_site_key_and_json_sends_captcha(tmp_path, sqlite_template, siteverify):
    calls, _ = siteverify
    with fresh_app(tmp_path, sqlite_template, **HCAPTCHA) as app:
        response = app.test_client().post("/subscribe", json={"email": "ann@example.com", "captcha": "tok2"})

        assert response.status_code == 202
        assert calls[0][0] == "https://api.hcaptcha.com/siteverify"
        assert calls[0][1]["sitekey"] == "site-key-2" and calls[0][1]["response"] == "tok2"


@pytest.mark.parametrize("answer, response_field, words", [
    ({"success": True}, None, "complete the captcha"),
    ({"success": False, "error-codes": ["invalid-input-response"]}, "tok", "did not pass"),
    ({}, "tok", "did not pass"),                  # no verdict is not a pass
    ({"success": "true"}, "tok", "did not pass"),  # nor is anything but JSON's true
    ("not a dict", "tok", "did not pass"),
    (urllib.error.URLError("unreachable"), "tok", "try again in a minute"),
    (TimeoutError("timed out"), "tok", "try again in a minute"),
])
def test_a_failed_or_unchecked_captcha_refuses_the_signup(tmp_path, sqlite_template, siteverify, answer,
                                                           response_field, words):
    siteverify[1]["value"] = answer
    with fresh_app(tmp_path, sqlite_template, **TURNSTILE) as app:
        client = app.test_client()
        body = {"email": "ann@example.com", **({"captcha": response_field} if response_field else {})}
        as_json = client.post("/subscribe", json=body)
        as_form = client.post("/subscribe", data={"email": "ann@example.com", "form": "iframe",
                                                  **({"cf-turnstile-response": response_field} if response_field else {})})

        assert as_json.status_code == 400 and as_json.json["field"] == "captcha" and words in as_json.json["error"]
        assert as_form.status_code == 400 and words in as_form.text and "cf-turnstile" in as_form.text
        assert counts() == (0, 0, 0)
        if response_field is None:
            assert siteverify[0] == []  # nothing to verify: the provider is not asked


class _Siteverify(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802 (the name http.server calls)
        self.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        if b"slow" in self.received[-1]:
            time.sleep(2)
        body = json.dumps({"success": True}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the slow case: the client gave up, as it should

    def log_message(self, *args):
        pass


def test_post_siteverify_posts_a_form_and_times_out(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Siteverify)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/siteverify"
    try:
        assert captcha.post_siteverify(url, {"secret": "s", "response": "a b"}, timeout=5) == {"success": True}
        assert _Siteverify.received[-1] == b"secret=s&response=a+b"
        with pytest.raises(TimeoutError):
            captcha.post_siteverify(url, {"response": "slow"}, timeout=0.3)
    finally:
        server.shutdown()
        server.server_close()


# --- 5. purging signups never confirmed -------------------------------------------------------------------

def signup_at(email: str, days_ago: float, status: str = "pending", delivery_status: str = "sent") -> Subscriber:
    when = utcnow() - timedelta(days=days_ago)
    sub = Subscriber(email=email, status=status, created_at=when, confirmed_at=when if status == "confirmed" else None)
    db.session.add(sub)
    db.session.flush()
    consent = Consent(subscriber_id=sub.id, form="iframe", consent_text="...", requested_at=when,
                      confirmed_at=when if status == "confirmed" else None)
    db.session.add(consent)
    db.session.flush()
    db.session.add(Delivery(kind="confirmation", subscriber_id=sub.id, dedupe_key=f"confirmation:{consent.id}",
                            payload={"consent_id": consent.id}, status=delivery_status, created_at=when))
    db.session.commit()
    return sub


def test_purge_forgets_old_unconfirmed_signups_and_keeps_everyone_else(app):
    for n in range(5):
        signup_at(f"stale{n}@example.com", days_ago=8)
    signup_at("recent@example.com", days_ago=2)
    signup_at("confirmed@example.com", days_ago=30, status="confirmed")
    signup_at("unsubscribed@example.com", days_ago=30, status="unsubscribed")
    signup_at("still-sending@example.com", days_ago=8, delivery_status="sending")
    again = signup_at("asked-again@example.com", days_ago=8)
    db.session.add(Consent(subscriber_id=again.id, form="iframe", consent_text="...", requested_at=utcnow()))
    # Added yesterday (through the API, say) with no consent of its own yet: not stale either.
    db.session.add(Subscriber(email="added-yesterday@example.com", status="pending",
                              created_at=utcnow() - timedelta(days=1)))
    db.session.commit()

    assert purge_unconfirmed(db.session, utcnow(), batch=2) == 5

    kept = set(db.session.scalars(select(Subscriber.email)))
    assert kept == {"recent@example.com", "confirmed@example.com", "unsubscribed@example.com",
                    "still-sending@example.com", "asked-again@example.com", "added-yesterday@example.com"}
    assert counts() == (6, 6, 5)  # the stale ones' consents and deliveries went with them
    assert db.session.scalar(select(func.count()).select_from(Download)) == 0


def test_purge_commits_batch_by_batch(app, monkeypatch):
    for n in range(5):
        signup_at(f"stale{n}@example.com", days_ago=10)
    commits = []
    original = db.session.commit
    monkeypatch.setattr(db.session, "commit", lambda: (commits.append(1), original())[1])

    assert purge_unconfirmed(db.session, utcnow(), batch=2) == 5
    assert len(commits) == 3  # 2 + 2 + 1


def test_purge_can_be_turned_off_and_takes_its_age_from_the_settings(tmp_path, sqlite_template):
    with fresh_app(tmp_path, sqlite_template, UNCONFIRMED_PURGE_DAYS=0) as app:
        signup_at("stale@example.com", days_ago=100)
        assert purge_unconfirmed(db.session, utcnow()) == 0
        app.config["UNCONFIRMED_PURGE_DAYS"] = 99
        assert purge_unconfirmed(db.session, utcnow()) == 1


def test_beat_purges_hourly_through_the_worker_task(app, tmp_path, monkeypatch):
    monkeypatch.setenv("MAILER_INSTANCE", str(tmp_path / "worker"))  # importing `worker` builds its own app
    from worker.tasks import purge_unconfirmed as task

    schedule = beat_schedule(app.config)
    assert schedule["purge-unconfirmed"]["task"] == "worker.tasks.purge_unconfirmed"
    assert schedule["purge-unconfirmed"]["schedule"] == timedelta(hours=1)
    assert "purge-unconfirmed" not in beat_schedule({**app.config, "UNCONFIRMED_PURGE_DAYS": 0})
    signup_at("stale@example.com", days_ago=8)

    task.run()  # the task's body, in this test's app
    assert counts() == (0, 0, 0)


# --- 6. headers ---------------------------------------------------------------------------------------

def directives(response) -> dict[str, list[str]]:
    parts = (p.split() for p in response.headers["Content-Security-Policy"].split(";"))
    return {p[0]: p[1:] for p in parts if p}


@pytest.mark.parametrize("path", ["/healthz", "/embed/token"])
def test_what_is_no_page_loads_nothing(client, path):
    response = client.get(path)
    policy = directives(response)

    assert response.mimetype == "application/json"
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["form-action"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/", "/embed", "/confirm/bad", "/no-such-page"])
def test_every_page_has_the_strict_policy(client, path):
    response = client.get(path)
    policy = directives(response)

    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"] and policy["img-src"] == ["'self'", "data:"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["form-action"][0] == "'self'" and BLOG in policy["form-action"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_only_the_embed_may_be_framed_and_only_by_the_blog(client):
    assert directives(client.get("/"))["frame-ancestors"] == ["'none'"]
    assert BLOG in directives(client.get("/embed"))["frame-ancestors"]


def test_no_template_has_inline_script_or_style():
    root = Path(__file__).resolve().parent.parent / "templates"
    for page in [*(root / "site").glob("*.html"), *(root / "dev").glob("*.html")]:
        assert not re.search(r"<script(?![^>]*\bsrc=)|\sstyle=|\son[a-z]+=", page.read_text()), page.name
