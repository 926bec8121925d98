"""POST /subscribe: storing a signup, its consent and its one confirmation; redirects; bad input."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from mailer.extensions import db
from mailer.models import Consent, Delivery, Status, Subscriber, utcnow
from tests.factories import deliveries, subscriber

BLOG_POST = "https://blog.example.com/2024/05/career-qa"
SAME_ANSWER_STATES = ["new", "pending", "confirmed", "unsubscribed", "bounced", "complained"]


@pytest.fixture
def client(either_app):
    """Every test here runs on SQLite and on PostgreSQL, where a new address is stored by a statement of its own."""
    return either_app.test_client()


# --- helpers ---------------------------------------------------------------------------------------

def post_json(client, body, **kwargs):
    return client.post("/subscribe", json=body, **kwargs)


def post_form(client, data, **kwargs):
    return client.post("/subscribe", data=data, **kwargs)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def add_subscriber(email: str, status: str, name: str | None = None) -> Subscriber:
    sub = Subscriber(email=email, status=status, name=name)
    db.session.add(sub)
    db.session.commit()
    return sub


def age_deliveries(sub: Subscriber, by: timedelta) -> None:
    """Pretend every mail owed to `sub` was queued `by` earlier than it was."""
    for delivery in deliveries(sub):
        delivery.created_at = delivery.created_at - by
    db.session.commit()


def set_state(client, email: str, state: str) -> None:
    """Bring `email` into one of SAME_ANSWER_STATES."""
    if state == "new":
        return
    if state in ("bounced", "complained"):
        add_subscriber(email, state)
        return
    assert post_json(client, {"email": email}).status_code == 202
    sub = subscriber(email)
    if state == "confirmed":
        sub.status = Status.CONFIRMED.value
    elif state == "unsubscribed":
        sub.status = Status.UNSUBSCRIBED.value
    db.session.commit()


# --- the happy paths --------------------------------------------------------------------------------

def test_json_signup_is_accepted_stored_and_owes_one_confirmation(client):
    response = post_json(client, {"email": "ann@example.com", "name": "Ann"})

    assert response.status_code == 202
    assert response.is_json and response.json["status"] == "ok"
    sub = subscriber("ann@example.com")
    assert sub is not None and sub.status == Status.PENDING.value and sub.name == "Ann"
    assert [d.kind for d in deliveries(sub)] == ["confirmation"]


def test_form_signup_without_next_shows_the_thank_you_page(client):
    response = post_form(client, {"email": "ann@example.com"})

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "Check your inbox" in response.text
    assert subscriber("ann@example.com") is not None


def test_iframe_form_signup_shows_the_embed_thank_you(client):
    response = post_form(client, {"email": "ann@example.com", "form": "iframe"})

    assert response.status_code == 200
    assert 'class="embed"' in response.text
    assert "Almost there" in response.text


@pytest.mark.parametrize("next_url", [
    BLOG_POST,
    "https://blog.example.com/",
    "https://BLOG.example.com/post?id=3#form",
    "http://mailer.test/",          # BASE_URL in the tests
])
def test_form_signup_redirects_to_next_on_an_allowed_origin(client, next_url):
    response = post_form(client, {"email": "ann@example.com", "next": next_url})

    assert response.status_code == 303
    assert response.headers["Location"].lower() == next_url.lower()  # werkzeug lower-cases the host
    assert subscriber("ann@example.com") is not None


@pytest.mark.parametrize("next_url", [
    "https://evil.example/",
    "//evil.example/",
    "///evil.example/",
    "https://blog.example.com.evil.net/",
    "https://blog.example.com@evil.example/",
    "http://blog.example.com/",                     # right host, wrong scheme: another origin
    "javascript:alert(document.domain)",
    "JavaScript://blog.example.com/%0Aalert(1)",
    "/\\evil.example",
    "https://blog.example.com/\r\nSet-Cookie: pwned=1",
    "https://blog.example.com/%0d%0aLocation:%20https://evil.example\r\n",
    "\r\nhttps://evil.example",
    "data:text/html,<script>alert(1)</script>",
])
def test_form_signup_never_redirects_elsewhere(client, next_url):
    response = post_form(client, {"email": "ann@example.com", "next": next_url})

    assert "Location" not in response.headers
    assert "evil" not in response.text and "javascript:" not in response.text.lower()
    if response.status_code == 200:  # the thank-you page: the signup itself still counts
        assert subscriber("ann@example.com") is not None
    else:  # or a malformed `next` (CR/LF) refuses the whole post
        assert "\r" in next_url or "\n" in next_url
        assert 400 <= response.status_code < 500 and subscriber("ann@example.com") is None


def test_a_corrected_form_keeps_its_way_back_to_the_blog(client):
    client.application.config["BLOG_URL"] = "https://blog.example.com"
    blog_post = "https://blog.example.com/career-qa/"
    refused = client.post("/subscribe", data={"email": "a@b", "next": f"{blog_post}thanks"},
                          headers={"Referer": blog_post})
    assert refused.status_code == 422
    assert f'name="next" value="{blog_post}thanks"' in refused.text  # the corrected form goes where the first would
    assert f'href="{blog_post}"' in refused.text  # back to the post, not to the thank-you page

    again = client.post("/subscribe", data={"email": "ann@example.com", "next": f"{blog_post}thanks"},
                        headers={"Referer": "http://mailer.test/subscribe"})  # sent from the error page
    assert again.status_code == 303 and again.headers["Location"] == f"{blog_post}thanks"


def test_back_links_never_lead_to_the_mailer_s_own_pages(client):
    client.application.config["BLOG_URL"] = "https://blog.example.com"
    refused = client.post("/subscribe", data={"email": "a@b"}, headers={"Referer": "http://mailer.test/subscribe"})
    assert 'href="https://blog.example.com"' in refused.text and 'href="http://mailer.test/subscribe"' not in refused.text
    thanks = client.post("/subscribe", data={"email": "ann@example.com"}, headers={"Referer": "http://mailer.test/"})
    assert 'href="https://blog.example.com"' in thanks.text and 'href="http://mailer.test/"' not in thanks.text


def test_the_iframe_records_the_page_that_framed_it(client):
    page = client.get("/embed", headers={"Referer": "https://blog.example.com/career-qa/"}).text
    assert 'name="source" value="https://blog.example.com/career-qa/"' in page
    long_address = "https://blog.example.com/career-qa/?utm=" + "x" * 3000
    page = client.get("/embed", headers={"Referer": long_address}).text
    assert f'name="source" value="{long_address[:2000]}"' in page  # a field the signup then accepts


def test_thank_you_page_links_back_only_to_an_allowed_referrer(client):
    good = post_form(client, {"email": "ann@example.com"}, headers={"Referer": BLOG_POST})
    evil = post_form(client, {"email": "bob@example.com"}, headers={"Referer": "https://evil.example/x"})

    assert f'href="{BLOG_POST}"' in good.text
    assert "evil.example" not in evil.text


@pytest.mark.parametrize("second", ["ann@example.com", "ANN@EXAMPLE.COM", "  Ann@example.com  ", "ann@EXAMPLE.com"])
def test_email_is_normalised_so_case_variants_are_one_subscriber(client, second):
    assert post_json(client, {"email": "Ann@Example.COM"}).status_code == 202
    assert post_json(client, {"email": second}).status_code == 202

    assert count(Subscriber) == 1
    assert subscriber("ann@example.com") is not None
    assert count(Consent) == 2


def test_consent_records_who_where_and_what(client):
    response = post_form(
        client,
        {"email": "ann@example.com", "form": "iframe", "source": BLOG_POST},
        headers={"User-Agent": "Mozilla/5.0 (TestBrowser)"},
        environ_base={"REMOTE_ADDR": "203.0.113.7"},
    )
    assert response.status_code == 200

    consent = db.session.scalar(select(Consent))
    assert consent.subscriber_id == subscriber("ann@example.com").id
    assert consent.ip == "203.0.113.7"
    assert consent.user_agent == "Mozilla/5.0 (TestBrowser)"
    assert consent.form == "iframe"
    assert consent.source_url == BLOG_POST
    assert "Multigenerational Manager's Handbook" in consent.consent_text
    assert "unsubscribe" in consent.consent_text.lower()
    assert consent.magnet.slug == "handbook"
    assert consent.requested_at is not None and consent.confirmed_at is None


def test_consent_source_falls_back_to_the_referrer_and_json_form_is_api(client):
    post_json(client, {"email": "ann@example.com"}, headers={"Referer": BLOG_POST})

    consent = db.session.scalar(select(Consent))
    assert consent.source_url == BLOG_POST
    assert consent.form == "api"


def test_unknown_form_kind_is_recorded_as_the_default(client):
    post_form(client, {"email": "ann@example.com", "form": "<script>"})

    assert db.session.scalar(select(Consent.form)) == "snippet"


@pytest.mark.parametrize("kind", ["json", "form"])
def test_the_answer_is_the_same_whatever_the_address_state(client, kind):
    answers = []
    for state in SAME_ANSWER_STATES:
        email = f"{state}@example.com"
        set_state(client, email, state)
        post = post_json if kind == "json" else post_form
        response = post(client, {"email": email})
        answers.append((state, response.status_code, response.mimetype, _without_the_address(response.get_data())))

    first = answers[0]
    for answer in answers[1:]:
        assert answer[1:] == first[1:], f"{answer[0]} is answered differently from {first[0]}"
    assert first[1] == (202 if kind == "json" else 200)


def _without_the_address(page: bytes) -> bytes:
    """The thanks page less what differs by the address typed: its masked form and the signed "send again" form."""
    page = re.sub(rb'<strong class="address">[^<]*</strong>', b"", page)
    return re.sub(rb'name="token" value="[^"]*"', b"", page)


def test_signup_of_a_confirmed_address_mails_the_download_link_not_a_confirmation(client):
    set_state(client, "ann@example.com", "confirmed")
    sub = subscriber("ann@example.com")
    age_deliveries(sub, timedelta(hours=1))

    post_json(client, {"email": "ann@example.com"})

    assert [d.kind for d in deliveries(sub)] == ["confirmation", "magnet"]


def test_signup_again_does_not_rename_a_confirmed_subscriber(client):
    add_subscriber("ann@example.com", Status.CONFIRMED.value, name="Ann")

    post_json(client, {"email": "ann@example.com", "name": "Someone Else"})

    assert subscriber("ann@example.com").name == "Ann"


# --- throttling the confirmation mail ---------------------------------------------------------------

def test_at_most_one_confirmation_per_fifteen_minutes(client):
    for _ in range(4):
        assert post_json(client, {"email": "ann@example.com"}).status_code == 202
    sub = subscriber("ann@example.com")
    assert len(deliveries(sub, "confirmation")) == 1

    age_deliveries(sub, timedelta(minutes=14))
    post_json(client, {"email": "ann@example.com"})
    assert len(deliveries(sub, "confirmation")) == 1

    age_deliveries(sub, timedelta(minutes=2))  # now 16 minutes old
    post_json(client, {"email": "ann@example.com"})
    assert len(deliveries(sub, "confirmation")) == 2


def test_at_most_three_confirmations_a_day(client):
    sub = None
    for _ in range(3):
        post_json(client, {"email": "ann@example.com"})
        sub = subscriber("ann@example.com")
        age_deliveries(sub, timedelta(minutes=20))
    assert len(deliveries(sub, "confirmation")) == 3

    post_json(client, {"email": "ann@example.com"})
    assert len(deliveries(sub, "confirmation")) == 3, "a fourth confirmation within 24 hours"
    age_deliveries(sub, timedelta(hours=13))  # the oldest is now 13 h 40 min old: still within the day
    post_json(client, {"email": "ann@example.com"})
    assert len(deliveries(sub, "confirmation")) == 3, "a fourth confirmation within 24 hours"

    age_deliveries(sub, timedelta(hours=10))  # the oldest is now > 24 h old
    post_json(client, {"email": "ann@example.com"})
    assert len(deliveries(sub, "confirmation")) == 4


def test_throttle_is_per_address(client):
    post_json(client, {"email": "ann@example.com"})
    post_json(client, {"email": "bob@example.com"})

    assert len(deliveries(subscriber("ann@example.com"), "confirmation")) == 1
    assert len(deliveries(subscriber("bob@example.com"), "confirmation")) == 1

    # Ann uses up her three a day; Bob, known too, is not held back by her count.
    for _ in range(3):
        age_deliveries(subscriber("ann@example.com"), timedelta(minutes=20))
        post_json(client, {"email": "ann@example.com"})
    age_deliveries(subscriber("bob@example.com"), timedelta(minutes=20))
    post_json(client, {"email": "bob@example.com"})
    assert len(deliveries(subscriber("ann@example.com"), "confirmation")) == 3
    assert len(deliveries(subscriber("bob@example.com"), "confirmation")) == 2


def test_a_bounced_address_gets_nothing(client):
    sub = add_subscriber("ann@example.com", Status.BOUNCED.value)

    response = post_json(client, {"email": "ANN@example.com", "name": "Ann"})

    assert response.status_code == 202
    assert deliveries(sub) == []
    assert subscriber("ann@example.com").status == Status.BOUNCED.value


def test_a_complained_address_that_signs_up_again_is_asked_to_confirm_and_stays_complained_until_then(client):
    # Only the reader lifts a complaint, as after an unsubscribe: a new consent, confirmed by its own link.
    sub = add_subscriber("ann@example.com", Status.COMPLAINED.value)

    response = post_json(client, {"email": "ANN@example.com", "name": "Ann"})

    assert response.status_code == 202
    assert [d.kind for d in deliveries(sub)] == ["confirmation"]
    assert subscriber("ann@example.com").status == Status.COMPLAINED.value


# --- bad input ----------------------------------------------------------------------------------------

LONG_EMAIL = "a" * 60 + "@" + ("b" * 60 + ".") * 3 + "c" * 56  # 300 characters, otherwise well-formed
assert len(LONG_EMAIL) == 300

BAD_FIELDS = [
    pytest.param({"email": "not-an-email"}, "email", id="invalid-email"),
    pytest.param({"email": "ann@"}, "email", id="no-domain"),
    pytest.param({"email": "ann@example"}, "email", id="no-tld"),
    pytest.param({"email": ""}, "email", id="empty-email"),
    pytest.param({"email": "   "}, "email", id="blank-email"),
    pytest.param({"name": "Ann"}, "email", id="missing-email"),
    pytest.param({"email": LONG_EMAIL}, "email", id="300-char-email"),
    pytest.param({"email": "ann@example.com\r\nBcc: victim@example.net"}, "email", id="crlf-email"),
    pytest.param({"email": "ann@example.com\n"}, "email", id="lf-email"),
    pytest.param({"email": "ann@example.com\rX"}, "email", id="cr-email"),
    pytest.param({"email": "ann@exa\0mple.com"}, "email", id="nul-email"),
    pytest.param({"email": "ann@example.com", "name": "Ann\r\nBcc: victim@example.net"}, "name", id="crlf-name"),
    pytest.param({"email": "ann@example.com", "name": "Ann\nSmith"}, "name", id="lf-name"),
    pytest.param({"email": "ann@example.com", "name": "Ann\0"}, "name", id="nul-name"),
    pytest.param({"email": "ann@example.com", "name": "Ann\u2028Smith"}, "name", id="line-separator-name"),
    pytest.param({"email": "ann@example.com", "name": "Ann\u2029Smith"}, "name", id="paragraph-separator-name"),
    pytest.param({"email": "ann@example.com", "name": "Ann\x85Smith"}, "name", id="next-line-name"),
    pytest.param({"email": "ann@example.com", "name": "A" * 101}, "name", id="101-char-name"),
    pytest.param({"email": "ann@example.com", "name": "Bob\u202eevil"}, "name", id="right-to-left-override-name"),
    pytest.param({"email": "ann@example.com", "name": "Bob\u2067x"}, "name", id="right-to-left-isolate-name"),
    pytest.param({"email": "ann@example.com", "name": "Bob\x9b"}, "name", id="c1-control-name"),
    pytest.param({"email": "ann@example.com", "magnet": "no-such-magnet"}, "magnet", id="unknown-magnet"),
    pytest.param({"email": "ann@example.com", "magnet": "handbook\r\n"}, "magnet", id="crlf-magnet"),
    pytest.param({"email": "ann@example.com", "source": "https://blog.example.com/\0"}, "source", id="nul-source"),
    pytest.param({"email": "ann@example.com", "next": "https://blog.example.com/\0"}, "next", id="nul-next"),
    pytest.param({"email": "ann@example.com", "source": "https://blog.example.com/\r\nX-Injected: 1"}, "source",
                 id="crlf-source"),
    pytest.param({"email": "ann@example.com", "source": "x" * 2001}, "source", id="2001-char-source"),
]


def assert_refused_and_nothing_stored(response, field: str) -> None:
    assert 400 <= response.status_code < 500, response.status_code
    assert count(Subscriber) == 0
    assert count(Consent) == 0
    assert count(Delivery) == 0


@pytest.mark.parametrize(("body", "field"), BAD_FIELDS)
def test_bad_json_field_is_a_4xx_naming_the_field(client, body, field):
    response = post_json(client, body)

    assert_refused_and_nothing_stored(response, field)
    assert response.is_json
    assert response.json["field"] == field
    assert field in response.json["error"].lower()


@pytest.mark.parametrize(("body", "field"), BAD_FIELDS)
def test_bad_form_field_is_a_4xx_page_naming_the_field(client, body, field):
    response = post_form(client, body)

    assert_refused_and_nothing_stored(response, field)
    assert response.mimetype == "text/html"
    assert 'role="alert"' in response.text
    alert = response.text.split('role="alert">', 1)[1].split("</p>", 1)[0]
    assert field in alert.lower()
    if field in ("email", "name"):
        assert f'name="{field}" ' in response.text
        assert response.text.count('aria-invalid="true"') == 1


def test_bad_iframe_form_shows_the_embed_with_the_error(client):
    response = post_form(client, {"email": "nope", "form": "iframe"})

    assert response.status_code == 422
    assert 'class="embed"' in response.text and 'role="alert"' in response.text
    assert count(Subscriber) == 0


@pytest.mark.parametrize(("data", "field"), [
    pytest.param(b'["ann@example.com"]', "body", id="list"),
    pytest.param(b'"ann@example.com"', "body", id="string"),
    pytest.param(b"42", "body", id="number"),
    pytest.param(b"null", "body", id="null"),
    pytest.param(b'{"email": "ann@example.com"', "body", id="invalid-json"),
    pytest.param(b"\xff\xfe not json", "body", id="not-utf8"),
    pytest.param(b"", "body", id="empty-body"),
    pytest.param(b'{"email": 42}', "email", id="number-email"),
    pytest.param(b'{"email": ["ann@example.com"]}', "email", id="list-email"),
    pytest.param(b'{"email": null}', "email", id="null-email"),
    pytest.param(b'{"email": "ann@example.com", "name": {"first": "Ann"}}', "name", id="object-name"),
    pytest.param(b'{"email": "ann@example.com", "magnet": 1}', "magnet", id="number-magnet"),
    pytest.param(b'{"email": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", "body", id="nested-too-deep"),
])
def test_malformed_json_body_is_a_4xx_naming_the_problem(client, data, field):
    response = client.post("/subscribe", data=data, content_type="application/json")

    assert_refused_and_nothing_stored(response, field)
    assert response.is_json
    assert response.json["field"] == field
    assert response.json["error"]


@pytest.mark.parametrize("json_body", [True, False])
def test_a_body_larger_than_any_signup_is_a_413_that_says_so(client, json_body):
    huge = "x" * (70 * 1024)
    if json_body:
        response = client.post("/subscribe", json={"email": "ann@example.com", "name": huge})
    else:
        response = client.post("/subscribe", data={"email": "ann@example.com", "name": huge})
    assert response.status_code == 413 and "more data than this form takes" in response.text
    assert count(Subscriber) == 0


@pytest.mark.parametrize("name", ["Zoë Ørsted", "فرزانه\u200cی", "👩\u200d💻 Ann", "Анна", "李"])
def test_names_in_any_script_with_joiners_are_fine(client, name):
    assert post_json(client, {"email": "ann@example.com", "name": name}).status_code == 202
    assert subscriber("ann@example.com").name == name


def test_name_of_exactly_100_characters_is_fine(client):
    response = post_json(client, {"email": "ann@example.com", "name": "A" * 100})

    assert response.status_code == 202
    assert subscriber("ann@example.com").name == "A" * 100


def test_a_refused_signup_leaves_an_earlier_one_untouched(client):
    post_json(client, {"email": "ann@example.com", "name": "Ann"})

    post_json(client, {"email": "ann@example.com", "name": "x" * 101})

    sub = subscriber("ann@example.com")
    assert sub.name == "Ann"
    assert count(Consent) == 1 and count(Delivery) == 1


def test_recent_signup_timestamps_are_recent(client):
    """Guards the throttle tests above: they rely on created_at being 'now' in UTC."""
    post_json(client, {"email": "ann@example.com"})
    created = deliveries(subscriber("ann@example.com"))[0].created_at
    now = utcnow().replace(tzinfo=None)
    assert abs((created.replace(tzinfo=None) - now).total_seconds()) < 60


# --- a new address on PostgreSQL: one statement of its own -----------------------------------------

def statements_during(action) -> list[str]:
    """Every statement the driver sends meanwhile, whoever sends it (SQLAlchemy, a pool ping, a cursor of our own)."""
    import psycopg

    seen, execute = [], psycopg.Cursor.execute

    def recording(cursor, query, *args, **kwargs):
        seen.append(str(query))
        return execute(cursor, query, *args, **kwargs)

    psycopg.Cursor.execute = recording
    try:
        action()
    finally:
        psycopg.Cursor.execute = execute
    return seen


def test_a_new_address_and_a_known_one_are_one_statement_alike(private_pg_app, monkeypatch):
    # The same work on the wire for both, so that the answer's time does not tell whether an address is known.
    from mailer import extensions
    from mailer.people import confirmation_cap

    # However slow this machine: no recount of the hourly cap, no test of an idle pooled connection.
    monkeypatch.setattr(confirmation_cap, "RECOUNT_SECONDS", 3600)
    monkeypatch.setattr(extensions, "PING_AFTER_IDLE_SECONDS", 3600)
    client = private_pg_app.test_client()
    client.post("/subscribe", json={"email": "first@example.com"})  # the cap's first count

    new = statements_during(lambda: post_json(client, {"email": "ann@example.com"}))
    known = statements_during(lambda: post_json(client, {"email": "ann@example.com"}))

    assert len(new) == 1 and new[0].lstrip().startswith("WITH magnet")
    assert known == new  # the same single statement: it applies the rules for people we know itself
    assert [d.kind for d in deliveries(subscriber("ann@example.com"))] == ["confirmation"]  # 15 minutes apart


def test_the_statement_writes_what_the_session_path_writes(private_pg_app):
    from mailer.people import subscriptions
    from mailer.people.subscriptions import SignupRequest

    def request(email):
        return SignupRequest(email=email, name="Ann", magnet="handbook", source_url=BLOG_POST, form="iframe",
                             ip="192.0.2.7", user_agent="Firefox")

    subscriptions.sign_up(db.session, request("statement@example.com"))
    subscriptions.subscribe(db.session, request("session@example.com"))
    db.session.commit()

    def stored(email):
        sub = subscriber(email)
        consent = db.session.scalars(select(Consent).where(Consent.subscriber_id == sub.id)).one()
        delivery = deliveries(sub)[0]
        return (
            {c: getattr(sub, c) for c in ("name", "status", "welcome_step", "digest_frequency", "confirmed_at",
                                         "welcome_next_at", "paused_until")},
            {c: getattr(consent, c) for c in ("magnet_id", "source_url", "form", "ip", "user_agent", "consent_text",
                                             "confirmed_at")},
            {c: getattr(delivery, c) for c in ("kind", "status", "attempts", "recipient", "digest_id")},
            delivery.payload == {"consent_id": consent.id}, delivery.dedupe_key == f"confirmation:{consent.id}",
            _moments_apart(sub.created_at, sub.updated_at, consent.requested_at, delivery.created_at,
                           delivery.next_attempt_at) < timedelta(seconds=1),
        )

    assert stored("statement@example.com") == stored("session@example.com")
    assert stored("statement@example.com")[3:] == (True, True, True)
    assert subscriber("statement@example.com").created_at > utcnow() - timedelta(minutes=1)
    raw = db.session.execute(text("SELECT payload::text FROM delivery ORDER BY id")).scalars().all()
    assert raw[0] == raw[1].replace(raw[1].split(": ")[1], raw[0].split(": ")[1])  # the same JSON text


@pytest.mark.parametrize("status, name", [("pending", "Ann B"), ("pending", None), ("unsubscribed", "Ann B"),
                                          ("confirmed", None), ("bounced", None), ("complained", None)])
@pytest.mark.parametrize("throttled", [False, True])
def test_the_statement_treats_a_known_address_as_the_session_path_does(private_pg_app, status, name, throttled):
    from mailer.models import Delivery
    from mailer.people import subscriptions
    from mailer.people.subscriptions import SignupRequest

    def request(email):
        return SignupRequest(email=email, name=name, magnet="handbook", source_url=BLOG_POST, form="iframe",
                             ip="192.0.2.7", user_agent="Firefox")

    for email in ("statement@example.com", "session@example.com"):
        subscriptions.subscribe(db.session, SignupRequest(email=email, name="Ann"))
        db.session.execute(Subscriber.__table__.update().where(Subscriber.email == email).values(status=status))
        if not throttled:  # the first mail a day ago: the per-address throttle lets another through
            db.session.execute(Delivery.__table__.update().values(created_at=utcnow() - timedelta(days=2)))
    db.session.commit()

    subscriptions.sign_up(db.session, request("statement@example.com"))
    subscriptions.subscribe(db.session, request("session@example.com"))
    db.session.commit()

    def stored(email):
        sub = subscriber(email)
        consents = db.session.scalars(select(Consent).where(Consent.subscriber_id == sub.id).order_by(Consent.id))
        return (sub.name, sub.status,
                [(c.form, c.ip, c.consent_text, c.magnet_id) for c in consents],
                [(d.kind, d.status, sorted(d.payload), re.sub(r"\d+", "N", d.dedupe_key))
                 for d in deliveries(sub)])

    assert stored("statement@example.com") == stored("session@example.com")


def _moments_apart(*moments) -> timedelta:
    return max(moments) - min(moments)


def test_a_known_address_hands_back_the_confirmation_the_cap_allowed_it(private_pg_app):
    # One client (127.0.0.1) may take the whole cap here: each network's share is tested in test_fair_limits.
    private_pg_app.config.update(CONFIRMATION_HOURLY_CAP=2, CONFIRMATION_NETWORK_SHARE=1.0)
    client = private_pg_app.test_client()
    post_json(client, {"email": "ann@example.com"})
    for _ in range(3):  # throttled per address: no second confirmation, and the cap is not used up by asking
        post_json(client, {"email": "ann@example.com"})
    post_json(client, {"email": "bob@example.com"})
    post_json(client, {"email": "cy@example.com"})  # over the cap: stored, not mailed

    owed = [len(deliveries(subscriber(e))) for e in ("ann@example.com", "bob@example.com", "cy@example.com")]
    assert owed == [1, 1, 0]


def test_an_unknown_magnet_on_postgresql_writes_nothing(private_pg_app):
    response = post_json(private_pg_app.test_client(), {"email": "ann@example.com", "magnet": "no-such-thing"})

    assert response.status_code == 422 and response.json["field"] == "magnet"
    assert count(Subscriber) == count(Consent) == count(Delivery) == 0


def test_a_driver_error_in_the_statement_is_raised_as_sqlalchemy_raises_it(private_pg_app, monkeypatch):
    from sqlalchemy.exc import DBAPIError

    from mailer.people import new_signup, subscriptions
    from mailer.people.subscriptions import SignupRequest

    monkeypatch.setattr(new_signup, "STATEMENT", "SELECT 1 / 0")
    with pytest.raises(DBAPIError) as raised:
        subscriptions.sign_up(db.session, SignupRequest(email="ann@example.com"))

    assert "division by zero" in str(raised.value.orig) and not raised.value.connection_invalidated


def test_one_new_address_signed_up_many_times_at_once_is_one_subscriber_and_one_confirmation(private_pg_app):
    import threading

    start, answers = threading.Barrier(8), []

    def sign_up():
        client = private_pg_app.test_client()
        start.wait()
        answers.append(post_json(client, {"email": "ann@example.com"}).status_code)

    threads = [threading.Thread(target=sign_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    db.session.rollback()
    assert answers == [202] * 8
    assert count(Subscriber) == 1 and count(Consent) == 8
    assert [d.kind for d in deliveries(subscriber("ann@example.com"))] == ["confirmation"]
