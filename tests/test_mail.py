"""What the mail looks like: parts, headers (Message-ID, List-Unsubscribe, List-Id), inlined HTML, no injection."""
from __future__ import annotations

import re
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy import select

from mailer import outbox, subscriptions
from mailer.extensions import db
from mailer.mail.messages import refuse_line_breaks
from mailer.models import Consent, Delivery, Status, Subscriber, utcnow
from mailer.subscriptions import SignupRequest

LIST_MAIL = ["welcome"]
ALL_KINDS = ["confirmation", "magnet", "welcome"]


# --- helpers ---------------------------------------------------------------------------------------

def sent_mail(app) -> dict[str, object]:
    """Sign Ann up, confirm her, send everything; return the messages by kind (judged by subject)."""
    subscriptions.subscribe(db.session, SignupRequest(email="ann@example.com", name="Ann"))
    db.session.commit()
    outbox.deliver_due()
    consent_id = db.session.scalar(select(Consent.id))
    subscriptions.confirm_subscription(db.session, consent_id)
    db.session.commit()
    outbox.deliver_due()
    return {kind_of(m): m for m in read_outbox(app)}


def read_outbox(app) -> list:
    messages = []
    for path in sorted(Path(app.config["OUTBOX_DIR"]).glob("*.eml")):
        with path.open("rb") as f:
            messages.append(BytesParser(policy=policy.default).parse(f))
    return messages


def kind_of(msg) -> str:
    subject = str(msg["Subject"]).strip()
    for prefix, kind in (("Confirm", "confirmation"), ("Your copy", "magnet"), ("Welcome", "welcome")):
        if subject.startswith(prefix):
            return kind
    raise AssertionError(f"unexpected mail {subject!r}")


@pytest.fixture
def mails(app):
    messages = sent_mail(app)
    assert sorted(messages) == ALL_KINDS
    return messages


def html_of(msg) -> str:
    return msg.get_body(("html",)).get_content()


def text_of(msg) -> str:
    return msg.get_body(("plain",)).get_content()


# --- structure --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_mail_is_multipart_alternative_with_text_and_html(mails, kind):
    msg = mails[kind]

    assert msg.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]  # the preferred part last
    assert text_of(msg).strip() and "<html" in html_of(msg)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_mail_has_the_basic_headers(mails, kind):
    msg = mails[kind]

    assert re.fullmatch(r"<[0-9a-f]{32}@[^<>@\s]+>", msg["Message-ID"])
    assert msg["To"].addresses[0].addr_spec == "ann@example.com"
    assert msg["From"] == "Career Q&A <newsletter@localhost>"
    assert msg["Date"].datetime is not None


def test_message_ids_differ_between_mails(mails):
    ids = {m["Message-ID"] for m in mails.values()}
    assert len(ids) == len(mails)


@pytest.mark.parametrize("kind", LIST_MAIL)
def test_list_mail_carries_one_click_unsubscribe_headers(app, mails, kind, client):
    msg = mails[kind]

    header = msg["List-Unsubscribe"]
    assert re.fullmatch(r"<https?://[^<>\s]+>", header)
    assert header.startswith("<http://mailer.test/unsubscribe/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Id"] == app.config["LIST_ID"]
    assert re.search(r"<[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+>$", msg["List-Id"])  # RFC 2919: <label.namespace>
    unsubscribe_url = header[1:-1]
    assert unsubscribe_url in text_of(msg)
    assert f'href="{unsubscribe_url}"' in html_of(msg)

    # The header works: a mailbox provider's one-click POST unsubscribes.
    response = client.post(unsubscribe_url.removeprefix("http://mailer.test"), data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert db.session.scalar(select(Subscriber.status)) == Status.UNSUBSCRIBED.value


def test_the_confirmation_has_no_list_headers(mails):
    msg = mails["confirmation"]

    assert msg["List-Unsubscribe"] is None
    assert msg["List-Unsubscribe-Post"] is None
    assert msg["List-Id"] is None
    assert "/unsubscribe/" not in msg.as_string()


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_html_styles_are_inlined(mails, kind):
    html = html_of(mails[kind])

    assert "<style" not in html.lower()
    assert 'style="' in html
    assert re.search(r'<body[^>]*style="[^"]*background', html), "the page keeps its look"
    if kind != "welcome":  # the welcome has no call to action
        assert re.search(r'<a [^>]*class="button"[^>]*style="[^"]*background', html), "the button keeps its look"


def test_confirmation_links_to_the_confirm_page(mails):
    msg = mails["confirmation"]

    assert re.search(r"http://mailer\.test/confirm/\S+", text_of(msg))
    assert 'href="http://mailer.test/confirm/' in html_of(msg)
    assert "Multigenerational Manager" in str(msg["Subject"])


def test_magnet_mail_links_to_the_download_and_greets_by_name(mails, client):
    msg = mails["magnet"]

    link = re.search(r"http://mailer\.test(/download/\S+)", text_of(msg)).group(1)
    assert f'href="http://mailer.test{link}"' in html_of(msg)
    assert "Hi Ann," in text_of(msg) and "Hi Ann," in html_of(msg)
    with client.get(link) as pdf:
        assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_names_are_escaped_in_html(app):
    subscriptions.subscribe(db.session, SignupRequest(email="ann@example.com", name="<b>Ann</b> & co"))
    db.session.commit()
    subscriptions.confirm_subscription(db.session, db.session.scalar(select(Consent.id)))
    db.session.commit()
    outbox.deliver_due()

    welcome = next(m for m in read_outbox(app) if kind_of(m) == "welcome")
    assert "<b>Ann</b>" not in html_of(welcome)
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; co" in html_of(welcome)


# --- the building blocks ------------------------------------------------------------------------------

def test_a_resend_after_a_crash_keeps_its_message_id(app):
    """A worker that died after sending but before recording it sends again: the copy must be recognisable."""
    sub = Subscriber(email="ann@example.com", status=Status.CONFIRMED.value)
    db.session.add(sub)
    db.session.commit()
    outbox.queue(db.session, "welcome", sub.id, "welcome:crash")
    db.session.commit()
    outbox.deliver_due()
    row = db.session.scalar(select(Delivery))
    row.status, row.lease_until = "sending", utcnow() - timedelta(seconds=1)  # as if the result was never written
    db.session.commit()

    outbox.deliver_due()

    first, second = read_outbox(app)
    assert first["Message-ID"] == second["Message-ID"] == db.session.scalar(select(Delivery.message_id))


@pytest.mark.parametrize("value", ["a\r\nBcc: x@example.net", "a\nb", "a\rb", "a\0b", "a\u2028b", "a\x85b"])
def test_header_values_with_line_breaks_are_refused(value):
    with pytest.raises(ValueError, match="line break"):
        refuse_line_breaks(value, "subject")


def test_an_address_with_a_line_break_is_never_mailed(app):
    """Header injection through the stored address: the row must not turn into a message with extra headers."""
    sub = Subscriber(email="ann@example.com\r\nBcc: victim@example.net", status=Status.CONFIRMED.value)
    db.session.add(sub)
    db.session.commit()
    outbox.queue(db.session, "welcome", sub.id, "welcome:injected")
    db.session.commit()

    outbox.deliver_due()

    assert read_outbox(app) == []
    assert db.session.scalar(select(Delivery.status)) != "sent"
