"""What the mail looks like: parts, headers (Message-ID, List-Unsubscribe, List-Id), inlined HTML, no injection."""
from __future__ import annotations

import re
import time
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from mailer.extensions import db
from mailer.mail.messages import refuse_line_breaks
from mailer.models import Consent, Delivery, Status, Subscriber, utcnow
from mailer.outbox import ledger, sender
from mailer.people import subscriptions
from mailer.people.subscriptions import SignupRequest
from tests import factories

LIST_MAIL = ["welcome", "digest"]
ALL_KINDS = ["confirmation", "digest", "magnet", "welcome"]


# --- helpers ---------------------------------------------------------------------------------------

def sent_mail(app) -> dict[str, object]:
    """Sign Ann up, confirm her, send her a digest, send everything; return the messages by kind (judged by subject)."""
    from mailer.posts import digests

    subscriptions.subscribe(db.session, SignupRequest(email="ann@example.com", name="Ann"))
    db.session.commit()
    sender.deliver_due()
    consent_id = db.session.scalar(select(Consent.id))
    subscriptions.confirm_subscription(db.session, consent_id)
    db.session.commit()
    sender.deliver_due()
    factories.post()
    assert digests.create_digest(db.session).recipients == 1
    db.session.commit()
    sender.deliver_due()
    return {kind_of(m): m for m in read_outbox(app)}


def read_outbox(app) -> list:
    messages = []
    for path in sorted(Path(app.config["OUTBOX_DIR"]).glob("*.eml")):
        with path.open("rb") as f:
            messages.append(BytesParser(policy=policy.default).parse(f))
    return messages


def kind_of(msg) -> str:
    subject = str(msg["Subject"]).strip()
    for prefix, kind in (("Confirm", "confirmation"), ("Your copy", "magnet"), ("Welcome", "welcome"),
                         ("Career Q&A", "digest")):
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
    if kind in ("confirmation", "magnet"):  # the welcome and the digest have no button to press
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
    sender.deliver_due()

    welcome = next(m for m in read_outbox(app) if kind_of(m) == "welcome")
    assert "<b>Ann</b>" not in html_of(welcome)
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; co" in html_of(welcome)


# --- the building blocks ------------------------------------------------------------------------------

def test_a_resend_after_a_crash_keeps_its_message_id(app):
    """A worker that died after sending but before recording it sends again: the copy must be recognisable."""
    sub = Subscriber(email="ann@example.com", status=Status.CONFIRMED.value)
    db.session.add(sub)
    db.session.commit()
    ledger.queue(db.session, "welcome", sub.id, "welcome:crash")
    db.session.commit()
    sender.deliver_due()
    row = db.session.scalar(select(Delivery))
    row.status, row.lease_until = "sending", utcnow() - timedelta(seconds=1)  # as if the result was never written
    db.session.commit()

    sender.deliver_due()

    first, second = read_outbox(app)
    assert first["Message-ID"] == second["Message-ID"] == db.session.scalar(select(Delivery.message_id))


@pytest.mark.parametrize("value", ["a\r\nBcc: x@example.net", "a\nb", "a\rb", "a\0b", "a\u2028b", "a\u2029b", "a\x85b"])
def test_header_values_with_line_breaks_are_refused(value):
    with pytest.raises(ValueError, match="line break"):
        refuse_line_breaks(value, "subject")


def test_an_address_with_a_line_break_is_never_mailed(app):
    """Header injection through the stored address: the row must not turn into a message with extra headers."""
    sub = Subscriber(email="ann@example.com\r\nBcc: victim@example.net", status=Status.CONFIRMED.value)
    db.session.add(sub)
    db.session.commit()
    ledger.queue(db.session, "welcome", sub.id, "welcome:injected")
    db.session.commit()

    sender.deliver_due()

    assert read_outbox(app) == []
    assert db.session.scalar(select(Delivery.status)) != "sent"


# --- list mail assembled from a frame -------------------------------------------------------------

def _digest_to(app, monkeypatch, email: str, name: str):
    from itsdangerous import TimestampSigner

    from mailer import links
    from mailer.mail.messages import build, message_id, wire
    from mailer.outbox import compose, digest_mail
    from mailer.posts import digests

    # Both builds sign the unsubscribe link: one clock second for both, or a tick between them changes the token.
    second = int(time.time())
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: second)

    db.session.add(Subscriber(email=email, name=name, status=Status.CONFIRMED.value))
    db.session.add(factories.post(title="Café culture & the four-day week: what Gen Z asks for " + "x" * 60))
    digest = digests.create_digest(db.session, intro="Two lines\nof intro, one ending in a space ")
    db.session.commit()
    delivery = db.session.scalar(select(Delivery).where(Delivery.digest_id == digest.id))
    subscriber = db.session.get(Subscriber, delivery.subscriber_id)
    fast = compose.compose(delivery, subscriber)
    # The general way, for comparison: the same filled parts built as an EmailMessage.
    frame = digest_mail.digest_frame(digest.id, delivery.created_at)
    unsubscribe_url = links.unsubscribe_url(subscriber.id)
    values = compose._digest_values(delivery, subscriber, frame.posts, unsubscribe_url)
    general = wire(build(frame.mail.parts.fill(values), email, unsubscribe_url=unsubscribe_url,
                         msg_id=message_id(delivery.dedupe_key, delivery.created_at)))
    return fast, general


def test_a_digest_assembled_from_its_frame_reads_as_the_general_build_does(app, monkeypatch):
    fast, general = _digest_to(app, monkeypatch, "zoe@example.com", "Zoë Ångström")
    assert fast.data != general.data and not fast.international
    a, b = fast.parsed(), general.parsed()
    for header in ("Subject", "From", "To", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id",
                   "MIME-Version"):
        assert str(a[header]) == str(b[header]), header
    assert a["Subject"].startswith("Café culture & the four-day week") and a.get_content_type() == "multipart/alternative"
    for part in ("plain", "html"):
        assert a.get_body((part,)).get_content() == b.get_body((part,)).get_content()
    assert "Hi Zoë Ångström," in a.get_body(("plain",)).get_content()
    assert "Zo=C3=AB" in fast.data.decode("ascii")  # quoted-printable, so any server takes it
    lines = fast.data.split(b"\r\n")
    assert b"\n" not in fast.data.replace(b"\r\n", b"") and max(map(len, lines)) <= 998


def test_an_address_the_frame_cannot_write_as_is_gets_the_general_build(app, monkeypatch):
    fast, general = _digest_to(app, monkeypatch, "jürgen@exämple.com", "Jürgen")
    assert fast.international and general.international and b"To: j\xc3\xbcrgen@ex\xc3\xa4mple.com\r\n" in fast.data
    a, b = fast.parsed(), general.parsed()
    assert a["List-Unsubscribe"] == b["List-Unsubscribe"] and a["Message-ID"] == b["Message-ID"]
    assert a.get_body(("plain",)).get_content() == b.get_body(("plain",)).get_content()


def test_the_frame_sends_only_crlf_line_ends_and_encodes_a_non_ascii_list_name(app):
    from mailer.mail.messages import ListMailFrame, Parts

    frame = ListMailFrame(Parts("Subject", "one\rtwo\nthree\r\n%%MAILER:greeting%%", "<p>a\rb</p>"),
                          "Career Q&A <newsletter@mailer.test>", "Karriere Q&Ä <news.mailer.test>")
    out = frame.fill({"greeting": "Hi,"}, "ann@example.com", msg_id="<1@mailer.test>",
                     unsubscribe_url="http://mailer.test/unsubscribe/t")
    assert b"\r" not in out.data.replace(b"\r\n", b"") and b"\n" not in out.data.replace(b"\r\n", b"")
    assert out.data.isascii()
    parsed = out.parsed()
    assert parsed["List-Id"] == "Karriere Q&Ä <news.mailer.test>"
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == "one\ntwo\nthree\nHi,\n"


def test_a_name_with_a_line_break_still_gives_crlf_lines_only(app, monkeypatch):
    # Names typed into the form cannot hold one; an import or an old row might.
    fast, general = _digest_to(app, monkeypatch, "ann@example.com", "Ann\rLee\nSmith")
    assert b"\r" not in fast.data.replace(b"\r\n", b"") and b"\n" not in fast.data.replace(b"\r\n", b"")
    assert fast.parsed().get_body(("plain",)).get_content() == general.parsed().get_body(("plain",)).get_content()


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=120), min_size=1, max_size=5),
       values=st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=160), min_size=4, max_size=4))
def test_a_quoted_frame_decodes_to_its_text_with_the_values_put_in(pieces, values):
    import quopri

    from mailer.mail.messages import QuotedFrame, _crlf, placeholder

    names = ["greeting", "link:7", "unsubscribe_url", "absent"]
    text = _crlf("".join(piece + (placeholder(names[n % 4]) if n < len(pieces) - 1 else "")
                         for n, piece in enumerate(pieces)))
    given_values = dict(zip(names[:3], values))  # "absent" has no value: its placeholder stays, as Parts.fill leaves it
    expected = text
    for name, value in given_values.items():
        expected = expected.replace(placeholder(name), value)
    encoded = QuotedFrame(text).fill(given_values)
    assert quopri.decodestring(encoded).decode("utf-8") == expected
    assert encoded.isascii() and all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    bare = encoded.replace(b"\r\n", b"")
    assert b"==" not in encoded and b"\r" not in bare and b"\n" not in bare


def test_a_digest_intro_keeps_its_paragraphs_and_line_breaks_in_html(app):
    from mailer.outbox import digest_mail
    from mailer.posts import digests

    factories.post()
    parts = digest_mail.render_digest("This week", "Hello from the blog!\r\n\r\nThis month: two posts\n<b>and</b> a",
                                  digests.unsent_posts(db.session, back_catalogue=True))
    html = re.sub(r"<p[^>]*>", "<p>", parts.html)
    assert "<p>Hello from the blog!</p>" in html and "<p>This month: two posts<br>&lt;b&gt;and&lt;/b&gt; a</p>" in html
    assert "Hello from the blog!\n\nThis month" in parts.text.replace("\r\n", "\n")
