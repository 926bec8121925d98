"""Click and open tracking in digests: the signed redirect, what it records, and the results it feeds."""
from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from flask import g
from markupsafe import escape
from sqlalchemy import delete, event, func, select, update

from mailer import tokens
from mailer.extensions import db
from mailer.models import Click, Delivery, Open, Post, Subscriber
from mailer.outbox import compose
from mailer.posts import click_buffer, digests
from tests import factories
from tests.admin_helpers import create_admin, log_in
from tests.test_digests import wait_for_digest

CLICK_LINK = re.compile(r"http://mailer\.test(/c/[A-Za-z0-9_.\-]+)")


def click_paths(mail) -> list[str]:
    text = mail.get_body(("plain",)).get_content()
    return list(dict.fromkeys(CLICK_LINK.findall(text)))


@pytest.mark.integration
def test_each_click_is_recorded_once_and_redirects_to_its_post(pg_app, worker, smtp, api):
    readers = factories.subscribers(3)
    first = factories.post("How do I negotiate a counter-offer?", n=2)
    second = factories.post("Career Q&A: Should I take the internship?", n=1)
    created = api.post("/digests")
    assert created.status_code == 202
    wait_for_digest(api, created.json["id"])
    client = pg_app.test_client()

    mine = click_paths(smtp.to(readers[0])[0])
    theirs = click_paths(smtp.to(readers[1])[0])
    assert len(mine) == 2 and not set(mine) & set(theirs)  # one token per recipient and link
    html = smtp.to(readers[0])[0].get_body(("html",)).get_content()
    assert first.url not in html and "/c/" in html and "/preferences/" in html

    # A minute after delivery, as people click: within seconds of it, scanners do (tests/test_scanners.py).
    db.session.execute(update(Delivery).values(sent_at=func.now() - timedelta(minutes=1)))
    db.session.commit()
    for _ in range(2):
        answer = client.get(mine[0])
        assert answer.status_code == 302 and answer.headers["Location"] == first.url
    assert client.get(theirs[0]).headers["Location"] == first.url
    assert client.get(theirs[1]).headers["Location"] == second.url
    assert db.session.scalar(select(func.count()).select_from(Click)) == 0  # waiting in Redis...

    state = api.get(f"/digests/{created.json['id']}").json  # ...until results are read
    assert db.session.scalar(select(func.count()).select_from(Click)) == 4  # each request is a click, once
    assert api.get(f"/digests/{created.json['id']}").json == state
    assert state["unique_clickers"] == 2
    # Reader 1 followed both of their links in one second, as a link scanner does: those are a machine's.
    assert state["clicks"] == [
        {"url": first.url, "title": first.title, "clicks": 3, "unique_clickers": 2, "human_clicks": 2,
         "machine_clicks": 1},
        {"url": second.url, "title": second.title, "clicks": 1, "unique_clickers": 1, "human_clicks": 0,
         "machine_clicks": 1}]
    assert (state["human_clicks"], state["machine_clicks"], state["human_clickers"]) == (2, 2, 1)
    row = db.session.scalars(select(Click).order_by(Click.id)).first()
    delivery = db.session.get(Delivery, row.delivery_id)
    assert (delivery.subscriber.email, row.digest_id, row.post_id) == (readers[0], created.json["id"], first.id)


def _clicker(app, subscriber_id: int):
    """GET a click link to post (id, URL) of the form sent before post URLs were signed in (four values), or
    of today's (five)."""
    client = app.test_client()

    def click(post: tuple[int, str], subscriber: int = subscriber_id, signed: bool = False):
        values = [7, subscriber, 3, post[0], *([post[1]] if signed else [])]
        return client.get(f"/c/{tokens.make(tokens.CLICK, values)}")
    return click


def clicks() -> int:
    return db.session.scalar(select(func.count()).select_from(Click))


@pytest.mark.integration
@pytest.mark.parametrize("redis", ["configured", "not configured"])
def test_an_older_link_reads_the_post_and_records_its_click(pg_app, redis):
    if redis == "not configured":
        pg_app.config["REDIS_URL"] = None
    def recorded() -> int:  # queued in Redis when it answers, like any click: stored by the next drain
        click_buffer.drain(db.session, pg_app.config)
        return clicks()

    [reader] = factories.subscribers(1)
    posts = factories.post(n=1), factories.post("A post taken down", n=2)
    post, gone = ((p.id, p.url) for p in posts)
    subscriber = factories.subscriber(reader).id
    db.session.commit()
    click = _clicker(pg_app, subscriber)

    assert click(post).headers["Location"] == post[1] and recorded() == 1
    db.session.execute(delete(Post).where(Post.id == gone[0]))
    db.session.commit()
    answer = click(gone)
    assert answer.status_code == 404 and "Location" not in answer.headers and recorded() == 1
    answer = click(post, subscriber=subscriber + 1000)  # erased since the mail went out
    assert answer.status_code == 302 and answer.headers["Location"] == post[1] and recorded() == 1
    row = db.session.scalar(select(Click))
    assert (row.delivery_id, row.subscriber_id, row.digest_id, row.post_id) == (7, subscriber, 3, post[0])


@pytest.mark.integration
def test_a_signed_link_redirects_without_the_database_and_its_click_is_stored_later(pg_app, monkeypatch):
    readers = factories.subscribers(2)
    posts = factories.post(n=1), factories.post("A post taken down", n=2)
    post, gone = ((p.id, p.url) for p in posts)
    ann, bob = (factories.subscriber(r).id for r in readers)
    db.session.commit()
    click = _clicker(pg_app, ann)
    statements = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    for _ in range(3):
        assert click(post, signed=True).headers["Location"] == post[1]
    assert click(gone, subscriber=bob, signed=True).headers["Location"] == gone[1]
    assert statements == [] and clicks() == 0
    # Taken down, and Bob erased, before the clicks are stored: those are dropped.
    db.session.execute(delete(Post).where(Post.id == gone[0]))
    db.session.execute(delete(Subscriber).where(Subscriber.id == bob))
    db.session.commit()
    assert click(post, subscriber=bob, signed=True).status_code == 302

    assert click_buffer.drain(db.session, pg_app.config) == 3 and click_buffer.drain(db.session, pg_app.config) == 0
    assert {(c.subscriber_id, c.post_id) for c in db.session.scalars(select(Click))} == {(ann, post[0])}

    monkeypatch.setitem(pg_app.config, "REDIS_URL", "redis://127.0.0.1:9/0")  # nothing listens there
    monkeypatch.setattr(click_buffer, "_down_until", 0.0)
    assert click(post, signed=True).headers["Location"] == post[1] and clicks() == 4  # straight to the table


@pytest.mark.integration
def test_beat_stores_waiting_clicks_without_anyone_reading_results(pg_app, worker):
    from mailer.tasks import beat_schedule

    assert beat_schedule(pg_app.config)["store-clicks"]["task"] == "worker.tasks.store_clicks"
    assert "store-clicks" not in beat_schedule({**pg_app.config, "REDIS_URL": None})
    [reader] = factories.subscribers(1)
    post = factories.post()
    click = _clicker(pg_app, factories.subscriber(reader).id)
    db.session.commit()
    assert click((post.id, post.url), signed=True).status_code == 302
    deadline = time.monotonic() + 30
    while clicks() == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert clicks() == 1


@pytest.mark.parametrize("path", [
    "/c/not-a-token",
    "/c/WzEsMSwxLDFd.ZZZZZZ.tampered",
])
def test_a_tampered_click_link_gets_a_page_and_no_redirect(client, path):
    answer = client.get(path)
    assert answer.status_code == 400 and "Location" not in answer.headers
    assert "not valid" in answer.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Click)) == 0


def test_a_changed_target_in_a_signed_payload_does_not_verify(app, client):
    post = factories.post()
    good = tokens.make(tokens.CLICK, [1, 1, 1, post.id])
    payload, rest = good.split(".", 1)
    forged = tokens.make(tokens.UNSUBSCRIBE, [1, 1, 1, post.id])  # signed, but for another purpose
    for token in (forged, payload[:-2] + "AA." + rest):
        answer = client.get(f"/c/{token}")
        assert 400 <= answer.status_code < 500 and "Location" not in answer.headers


def _one_digest(app, n: int = 1, **config):
    app.config.update(config)
    factories.subscribers(1, prefix=f"reader-{n}-")
    post = factories.post(n=n)
    digest = digests.create_digest(db.session)
    db.session.commit()
    delivery = db.session.scalar(select(Delivery).where(Delivery.digest_id == digest.id))
    subscriber = db.session.get(Subscriber, delivery.subscriber_id)
    return post, delivery, compose.compose(delivery, subscriber).parsed()


def test_switched_off_the_mail_carries_the_posts_own_links(app):
    post, _, msg = _one_digest(app, CLICK_TRACKING=False)
    text, html = msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()
    assert f"Read more: {post.url}" in text and f'href="{post.url}"' in html
    assert "/c/" not in text + html and "/o/" not in html and "%%MAILER" not in text + html


def test_the_open_pixel_is_off_by_default_and_records_a_hint_when_on(app, client):
    _, _, msg = _one_digest(app)
    assert "/o/" not in msg.get_body(("html",)).get_content()

    _, delivery, msg = _one_digest(app, 2, OPEN_TRACKING=True)
    pixel = re.search(r'src="http://mailer\.test(/o/[^"]+\.gif)"', msg.get_body(("html",)).get_content()).group(1)
    answer = client.get(pixel)
    assert answer.status_code == 200 and answer.mimetype == "image/gif"
    opened = db.session.scalars(select(Open)).one()
    assert (opened.delivery_id, opened.digest_id) == (delivery.id, delivery.digest_id)
    assert client.get("/o/forged.gif").status_code == 404


def test_the_console_charts_a_digest_s_clicks_and_lists_a_subscriber_s(app, client):
    def forget() -> None:
        for name in ("_login_user", "csrf_token"):
            g.pop(name, None)

    app.before_request_funcs.setdefault(None, []).insert(0, forget)
    post, delivery, msg = _one_digest(app)
    path = CLICK_LINK.search(msg.get_body(("plain",)).get_content()).group(1)
    assert client.get(path).headers["Location"] == post.url
    # The link's payload, not its signing time: a second may pass between compose and this line.
    assert tokens.read(tokens.CLICK, path.removeprefix("/c/")) == [delivery.id, delivery.subscriber_id,
                                                                  delivery.digest_id, post.id, post.url]
    create_admin()
    log_in(client)

    page = client.get(f"/admin/digests/{delivery.digest_id}").get_data(as_text=True)
    title = str(escape(post.title))
    assert '<ol class="hbars clicks"' in page and "1 person clicked" in page and title in page
    assert "<script>" not in page.split('id="clicks"')[1].split("</section>")[0]
    person = client.get(f"/admin/subscribers/{delivery.subscriber_id}").get_data(as_text=True)
    assert title in person.split('id="clicks"')[1] and f"#{delivery.digest_id}" in person
