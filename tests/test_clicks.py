"""Click and open tracking in digests: the signed redirect, what it records, and the results it feeds."""
from __future__ import annotations

import re

import pytest
from flask import g
from markupsafe import escape
from sqlalchemy import func, select

from mailer import compose, digests, links, tokens
from mailer.extensions import db
from mailer.models import Click, Delivery, Open, Subscriber
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

    for _ in range(2):
        answer = client.get(mine[0])
        assert answer.status_code == 302 and answer.headers["Location"] == first.url
    assert client.get(theirs[0]).headers["Location"] == first.url
    assert client.get(theirs[1]).headers["Location"] == second.url
    assert db.session.scalar(select(func.count()).select_from(Click)) == 4  # each request is a click

    state = api.get(f"/digests/{created.json['id']}").json
    assert state["unique_clickers"] == 2
    assert state["clicks"] == [
        {"url": first.url, "title": first.title, "clicks": 3, "unique_clickers": 2},
        {"url": second.url, "title": second.title, "clicks": 1, "unique_clickers": 1}]
    row = db.session.scalars(select(Click).order_by(Click.id)).first()
    delivery = db.session.get(Delivery, row.delivery_id)
    assert (delivery.subscriber.email, row.digest_id, row.post_id) == (readers[0], created.json["id"], first.id)


@pytest.mark.integration
def test_on_postgresql_a_click_is_one_statement_that_spares_the_erased_and_the_deleted(pg_app):
    [reader] = factories.subscribers(1)
    post, gone = factories.post(n=1), factories.post("A post taken down", n=2)
    subscriber = factories.subscriber(reader)
    db.session.commit()
    client = pg_app.test_client()

    def click(post_id: int, subscriber_id: int = subscriber.id):
        return client.get(links.click_url(7, subscriber_id, 3, post_id).removeprefix("http://mailer.test"))

    clicks = lambda: db.session.scalar(select(func.count()).select_from(Click))  # noqa: E731
    assert click(post.id).headers["Location"] == post.url and clicks() == 1
    db.session.delete(gone)
    db.session.commit()
    answer = click(gone.id)
    assert answer.status_code == 404 and "Location" not in answer.headers and clicks() == 1
    answer = click(post.id, subscriber_id=subscriber.id + 1000)  # erased since the mail went out
    assert answer.status_code == 302 and answer.headers["Location"] == post.url and clicks() == 1
    row = db.session.scalar(select(Click))
    assert (row.delivery_id, row.subscriber_id, row.digest_id, row.post_id) == (7, subscriber.id, 3, post.id)


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
    assert links.click_url(delivery.id, delivery.subscriber_id, delivery.digest_id, post.id).endswith(path)
    create_admin()
    log_in(client)

    page = client.get(f"/admin/digests/{delivery.digest_id}").get_data(as_text=True)
    title = str(escape(post.title))
    assert '<svg class="chart clicks"' in page and "1 reader clicked" in page and title in page
    assert "<script>" not in page.split('id="clicks"')[1].split("</section>")[0]
    person = client.get(f"/admin/subscribers/{delivery.subscriber_id}").get_data(as_text=True)
    assert title in person.split('id="clicks"')[1] and f"#{delivery.digest_id}" in person
