"""People or machines: each click and open is recorded with its evidence and judged by posts/scanners' one rule.

The user agents are the ones these scanners and proxies really send (as published by the projects that met them:
Gmail's proxy and prefetcher, Yahoo's proxy, Barracuda Sentinel, Apple Mail Privacy Protection), beside real
browsers' and mail clients' own.
"""
from __future__ import annotations

import http.client
import json
import re
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from mailer.config import ConfigError, load
from mailer.extensions import db
from mailer.models import Click, Delivery, Digest, Open, Subscriber, utcnow
from mailer.outbox import compose
from mailer.people import privacy
from mailer.posts import click_buffer, digests, engagement, scanners
from tests import factories
from tests.browser import serve_in_thread
from tests.conftest import REDIS_URL
from tests.smtp_sink import _free_port

GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
GMAIL_PREFETCH = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0")
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
BARRACUDA = "Barracuda Sentinel (EE)"
APPLE_MPP = "Mozilla/5.0"
PYTHON_REQUESTS = "python-requests/2.31.0"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
          "Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.0 Mobile/15E148 Safari/604.1")
FIREFOX = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:125.0) Gecko/20100101 Firefox/125.0"
APPLE_MAIL = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
CUBOT_PHONE = ("Mozilla/5.0 (Linux; Android 9; CUBOT X20 PRO) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/120.0.6099.144 Mobile Safari/537.36")
LINK = re.compile(r'href="http://mailer\.test(/c/[A-Za-z0-9_.\-]+)"')
HIDDEN = re.compile(r'<a href="http://mailer\.test(/c/[A-Za-z0-9_.\-]+)" style="display:none" aria-hidden="true" '
                    r'tabindex="-1"></a>')


@pytest.mark.parametrize("agent", [GMAIL_PROXY, GMAIL_PREFETCH, YAHOO_PROXY, BARRACUDA, APPLE_MPP, PYTHON_REQUESTS,
                                   "", None])
def test_scanners_and_proxies_are_machines_by_their_user_agent(agent):
    assert scanners.machine_agent(agent)
    assert scanners.verdict({}, "GET", agent, False, 3600) == "agent"


@pytest.mark.parametrize("agent", [CHROME, IPHONE, FIREFOX, APPLE_MAIL, CUBOT_PHONE])
def test_browsers_and_mail_clients_are_people(agent):
    assert not scanners.machine_agent(agent)
    assert scanners.verdict({}, "GET", agent, False, 3600) is None


def test_each_rule_and_its_order():
    config = {"SCANNER_SECONDS": 5}
    assert scanners.verdict(config, "HEAD", CHROME, False, 3600) == "head"
    assert scanners.verdict(config, "GET", CHROME, True, 3600) == "network"
    assert scanners.verdict(config, "GET", CHROME, False, 4) == "soon"
    assert scanners.verdict(config, "GET", CHROME, False, 5) is None
    assert scanners.verdict({"SCANNER_SECONDS": 0}, "GET", CHROME, False, 0) is None  # the timing rule off
    assert scanners.verdict(config, "GET", CHROME, False, None) is None  # delivery time unknown
    assert scanners.verdict(config, "GET", CHROME, False, 3600, links_at_once=2) == "burst"
    assert scanners.verdict(config, "HEAD", BARRACUDA, True, 0, 3, hidden=True) == "hidden"
    # Recorded before evidence was kept: no method, no user agent, and nothing against a person.
    assert scanners.verdict(config, None, None, False, None) is None


def test_scanner_networks_are_checked_and_a_bad_one_stops_start_up():
    config = {"SCANNER_NETWORKS": ["40.94.0.0/16", "2a01:111::/32"]}
    assert scanners.from_scanner_network("40.94.16.7", config)
    assert scanners.from_scanner_network("::ffff:40.94.16.7", config)
    assert scanners.from_scanner_network("2a01:111:f400::1", config)
    assert not scanners.from_scanner_network("203.0.113.9", config)
    assert not scanners.from_scanner_network("not an address", config)
    assert not scanners.from_scanner_network("40.94.16.7", {})
    assert load({"SCANNER_NETWORKS": "40.94.0.0/16, 2a01:111::/32"})["SCANNER_NETWORKS"] == ["40.94.0.0/16",
                                                                                             "2a01:111::/32"]
    with pytest.raises(ConfigError, match="SCANNER_NETWORKS"):
        load({"SCANNER_NETWORKS": "40.94.0.0/33"})
    with pytest.raises(ConfigError, match="SCANNER_SECONDS"):
        load({"SCANNER_SECONDS": "-1"})


# --- recorded through the redirect, on both databases ---------------------------------------------------------

def a_digest_mail(posts: int = 2, sent_ago: timedelta = timedelta(minutes=5)):
    """One reader's digest of `posts` posts, sent `sent_ago`: its delivery and the paths of its links (posts in
    order, then the hidden one)."""
    factories.subscribers(1, prefix=f"reader-{uuid.uuid4().hex[:6]}-")
    for n in range(1, posts + 1):
        factories.post(f"Career Q&A: question {n}", n=n)
    digest = digests.create_digest(db.session)
    db.session.commit()
    made = list(digest.posts)  # in the mail's order
    delivery = db.session.scalar(select(Delivery).where(Delivery.digest_id == digest.id))
    html = compose.compose(delivery, db.session.get(Subscriber, delivery.subscriber_id)).parsed() \
        .get_body(("html",)).get_content()
    delivery.status, delivery.sent_at = "sent", utcnow() - sent_ago
    db.session.commit()
    hidden = HIDDEN.search(html).group(1)
    paths = list(dict.fromkeys(p for p in LINK.findall(html) if p != hidden))
    assert len(paths) == posts
    return delivery, made, paths, hidden


def a_minute_passes() -> None:
    """The clicks stored so far, and the mails' delivery, move a minute back: what comes next is no burst with them."""
    for row in [*db.session.scalars(select(Click)), *db.session.scalars(select(Delivery))]:
        if isinstance(row, Click):
            row.at -= timedelta(minutes=1)
        elif row.sent_at is not None:
            row.sent_at -= timedelta(minutes=1)
    db.session.commit()


def clicks() -> list[Click]:
    db.session.expire_all()
    return list(db.session.scalars(select(Click).order_by(Click.id)))


@pytest.fixture
def buffered(either_app):
    """`either_app` with its clicks queued in Redis (a key of its own) until a drain stores them."""
    either_app.config.update(REDIS_URL=REDIS_URL, CELERY_QUEUE=f"scanners-{uuid.uuid4().hex}")
    yield either_app
    from mailer import redis_store
    redis_store.client(REDIS_URL).delete(redis_store.key(either_app.config, "clicks"))


def test_a_person_s_click_is_human_with_its_evidence(either_app):
    delivery, posts, paths, _ = a_digest_mail()
    answer = either_app.test_client().get(paths[0], headers={"User-Agent": IPHONE})
    assert answer.status_code == 302 and answer.headers["Location"] == posts[0].url
    [click] = clicks()
    assert (click.human, click.machine_reason, click.method, click.user_agent) == (True, None, "GET", IPHONE)
    assert 299 <= click.seconds_after_delivery <= 310 and click.links_at_once == 1


def test_a_head_request_is_redirected_and_recorded_as_a_machine(either_app):
    _, posts, paths, _ = a_digest_mail()
    answer = either_app.test_client().head(paths[0], headers={"User-Agent": CHROME})
    assert answer.status_code == 302 and answer.headers["Location"] == posts[0].url and answer.data == b""
    [click] = clicks()
    assert (click.human, click.machine_reason, click.method) == (False, "head", "HEAD")


def test_a_click_seconds_after_delivery_is_a_machine(either_app):
    _, _, paths, _ = a_digest_mail(sent_ago=timedelta(seconds=1))
    either_app.test_client().get(paths[0], headers={"User-Agent": CHROME})
    [click] = clicks()
    assert (click.human, click.machine_reason) == (False, "soon") and click.seconds_after_delivery < 5


def test_every_link_at_once_is_a_machine_but_a_double_click_is_a_person(either_app):
    _, _, paths, _ = a_digest_mail(posts=3)
    client = either_app.test_client()
    for _ in range(2):
        client.get(paths[0], headers={"User-Agent": CHROME})  # a double click: one link twice
    assert [c.human for c in clicks()] == [True, True]
    client.get(paths[1], headers={"User-Agent": CHROME})  # a second link in the same second: a scanner's sweep
    assert [(c.human, c.machine_reason, c.links_at_once) for c in clicks()] == [(False, "burst", 2)] * 3


def test_the_hidden_link_redirects_records_no_click_and_marks_the_clicks_around_it(either_app):
    delivery, _, paths, hidden = a_digest_mail()
    client = either_app.test_client()
    client.get(paths[0], headers={"User-Agent": CHROME})
    answer = client.get(hidden, headers={"User-Agent": CHROME})
    assert answer.status_code == 302 and answer.headers["Location"] == "http://mailer.test"
    client.get(paths[0], headers={"User-Agent": CHROME})
    assert [(c.human, c.machine_reason) for c in clicks()] == [(False, "hidden")] * 2
    assert db.session.scalar(select(Delivery.hidden_link_at).where(Delivery.id == delivery.id)) is not None


def test_evidence_travels_through_redis_and_a_burst_spans_two_drains(buffered):
    _, _, paths, hidden = a_digest_mail(posts=3)
    client = buffered.test_client()
    client.get(paths[0], headers={"User-Agent": CHROME})
    assert clicks() == [] and click_buffer.drain(db.session, buffered.config) == 1
    [click] = clicks()
    assert (click.human, click.method, click.user_agent, click.links_at_once) == (True, "GET", CHROME, 1)

    client.head(paths[1], headers={"User-Agent": BARRACUDA})  # another link of the mail, in the same second
    assert click_buffer.drain(db.session, buffered.config) == 1
    assert [(c.human, c.machine_reason, c.method, c.user_agent, c.links_at_once) for c in clicks()] == [
        (False, "burst", "GET", CHROME, 2), (False, "head", "HEAD", BARRACUDA, 2)]

    client.get(hidden, headers={"User-Agent": CHROME})  # the hidden link: no click of its own
    assert click_buffer.drain(db.session, buffered.config) == 0 and len(clicks()) == 2


def test_results_count_people_and_machines_apart(either_app):
    delivery, posts, paths, _ = a_digest_mail()
    client = either_app.test_client()
    client.get(paths[0], headers={"User-Agent": FIREFOX})
    client.get(paths[0], headers={"User-Agent": FIREFOX})
    a_minute_passes()
    client.head(paths[1], headers={"User-Agent": FIREFOX})
    client.get(paths[1], headers={"User-Agent": GMAIL_PREFETCH})
    either_app.config["OPEN_TRACKING"] = True
    from mailer import links
    pixel = links.open_url(delivery.id, delivery.subscriber_id, delivery.digest_id).removeprefix("http://mailer.test")
    client.get(pixel, headers={"User-Agent": GMAIL_PROXY})
    client.get(pixel, headers={"User-Agent": APPLE_MAIL})
    client.get(pixel, headers={"User-Agent": APPLE_MPP})

    result = engagement.digest_clicks(db.session, db.session.get(Digest, delivery.digest_id)).as_json()
    assert [(p["url"], p["clicks"], p["human_clicks"], p["machine_clicks"]) for p in result["clicks"]] == [
        (posts[0].url, 2, 2, 0), (posts[1].url, 2, 0, 2)]
    assert (result["human_clicks"], result["machine_clicks"], result["human_clickers"]) == (2, 2, 1)
    assert (result["opens"], result["human_opens"], result["machine_opens"]) == (3, 1, 2)
    listed = engagement.digest_totals(db.session, [delivery.digest_id])[delivery.digest_id]  # the digests page
    assert (listed.clicks, listed.unique_openers) == (2, 1)
    opens = db.session.scalars(select(Open).order_by(Open.id)).all()
    assert [(o.human, o.machine_reason, o.user_agent) for o in opens] == [
        (False, "agent", GMAIL_PROXY), (True, None, APPLE_MAIL), (False, "agent", APPLE_MPP)]


def test_machine_clicks_make_nobody_a_clicker(either_app):
    delivery, _, paths, _ = a_digest_mail()
    either_app.test_client().get(paths[0], headers={"User-Agent": YAHOO_PROXY})
    result = engagement.digest_clicks(db.session, db.session.get(Digest, delivery.digest_id))
    assert (result.unique_clickers, result.human_clickers, result.machine_clicks) == (1, 0, 1)


def test_a_network_in_scanner_networks_is_a_machine(either_app):
    either_app.config["SCANNER_NETWORKS"] = ["40.94.0.0/16"]
    _, _, paths, _ = a_digest_mail()
    client = either_app.test_client()
    client.get(paths[0], headers={"User-Agent": CHROME}, environ_base={"REMOTE_ADDR": "40.94.16.7"})
    client.get(paths[0], headers={"User-Agent": CHROME}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert [(c.human, c.machine_reason) for c in clicks()] == [(False, "network"), (True, None)]


# --- a real server and a real client -----------------------------------------------------------------------

@pytest.fixture
def server(buffered):
    port = _free_port()
    httpd = make_server("127.0.0.1", port, buffered, threaded=True)
    serve_in_thread(httpd)
    try:
        yield port
    finally:
        httpd.shutdown()
        httpd.server_close()


def request(port: int, method: str, path: str, agent: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers={"User-Agent": agent})
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def test_over_http_a_scanner_s_head_and_a_person_s_get_are_told_apart(buffered, server):
    _, posts, paths, _ = a_digest_mail()
    head = request(server, "HEAD", paths[0], BARRACUDA)
    click_buffer.drain(db.session, buffered.config)
    a_minute_passes()
    get = request(server, "GET", paths[1], CHROME)
    assert (head.status, head.getheader("Location")) == (302, posts[0].url)
    assert (get.status, get.getheader("Location")) == (302, posts[1].url)
    click_buffer.drain(db.session, buffered.config)
    assert [(c.post_id, c.human, c.method) for c in clicks()] == [(posts[0].id, False, "HEAD"),
                                                                 (posts[1].id, True, "GET")]


# --- the mail, the console, a person's data --------------------------------------------------------------------

def test_the_hidden_link_is_in_the_html_only_and_empty(app):
    delivery, _, _, hidden = a_digest_mail()
    message = compose.compose(delivery, db.session.get(Subscriber, delivery.subscriber_id)).parsed()
    assert hidden and hidden not in message.get_body(("plain",)).get_content()
    app.config["CLICK_TRACKING"] = False
    factories.post("Career Q&A: another", n=9)
    digest = digests.create_digest(db.session)
    db.session.commit()
    plain = db.session.scalar(select(Delivery).where(Delivery.digest_id == digest.id))
    html = compose.compose(plain, db.session.get(Subscriber, plain.subscriber_id)).parsed() \
        .get_body(("html",)).get_content()
    assert "aria-hidden" not in html and "/c/" not in html


def test_the_hidden_link_is_not_seen_in_a_real_browser(app, browser):
    delivery, _, _, hidden = a_digest_mail()
    html = compose.compose(delivery, db.session.get(Subscriber, delivery.subscriber_id)).parsed() \
        .get_body(("html",)).get_content()
    page = browser.new_page(viewport={"width": 390, "height": 800})
    page.set_content(html)
    anchors = page.locator("a[href*='/c/']")
    visible = [anchors.nth(n).get_attribute("href") for n in range(anchors.count()) if anchors.nth(n).is_visible()]
    assert visible and not any(hidden in href for href in visible)
    trap = page.locator(f"a[href$='{hidden}']")
    assert trap.count() == 1 and trap.bounding_box() is None


def test_the_console_shows_people_and_machines_apart(app, admin):
    delivery, posts, paths, _ = a_digest_mail()
    admin.get(paths[0], headers={"User-Agent": CHROME})
    a_minute_passes()
    admin.head(paths[1], headers={"User-Agent": CHROME})
    page = admin.get(f"/admin/digests/{delivery.digest_id}").get_data(as_text=True)
    section = " ".join(page.split('id="clicks"')[1].split("</section>")[0].split())
    assert "1 person clicked 1 time" in section and "machines (link scanners) clicked 1 time" in section
    assert section.count('class="machine"') == 1  # the grey part of the second post's bar
    person = admin.get(f"/admin/subscribers/{delivery.subscriber_id}").get_data(as_text=True)
    events = person.split('id="clicks"')[1].split("</section>")[0]
    assert events.count('badge person') == 1 and events.count('badge machine') == 1
    assert scanners.REASONS["head"] in events


def test_the_export_holds_the_evidence_and_erasure_takes_it_along_with_what_waits_in_redis(buffered):
    delivery, _, paths, hidden = a_digest_mail()
    delivery_id, subscriber_id = delivery.id, delivery.subscriber_id
    client = buffered.test_client()
    client.get(paths[0], headers={"User-Agent": IPHONE})
    data = privacy.export_subscriber(db.session, db.session.get(Subscriber, subscriber_id))
    [click] = data["clicks"]
    assert (click["human"], click["method"], click["user_agent"], click["links_at_once"]) == (True, "GET", IPHONE, 1)
    assert click["seconds_after_delivery"] >= 299 and "hidden_link_at" in data["emails"][0]
    json.dumps(data)

    client.get(hidden, headers={"User-Agent": BARRACUDA})
    client.get(paths[1], headers={"User-Agent": BARRACUDA})  # waiting in Redis when the erasure comes
    privacy.erase_subscriber(db.session, db.session.get(Subscriber, subscriber_id))
    db.session.commit()
    assert clicks() == [] and click_buffer.drain(db.session, buffered.config) == 0
    assert db.session.scalar(select(Delivery).where(Delivery.id == delivery_id)) is None


def test_clicks_recorded_before_the_evidence_keep_their_verdict(either_app):
    """A click queued in Redis before the evidence was kept (five values) is stored as a person's."""
    delivery, posts, _, _ = a_digest_mail()
    from mailer.posts.click_store import Hit, store
    store(db.session, either_app.config, [Hit(delivery.id, delivery.subscriber_id, delivery.digest_id, posts[0].id,
                                              utcnow().timestamp())])
    db.session.commit()
    [click] = clicks()
    assert (click.human, click.method, click.user_agent) == (True, None, None)
