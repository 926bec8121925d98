"""The author's studio: settings stored once and used by pages, the embed and every mail; the public archive."""
from __future__ import annotations

import hashlib
import io
import re
from email import policy
from email.parser import BytesParser
from pathlib import Path

import feedparser
import pytest
from flask import g
from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Consent, Digest, NewsletterSettings
from mailer.outbox import sender
from mailer.people import subscriptions
from mailer.people.subscriptions import SignupRequest
from mailer.posts import digests
from tests import factories
from tests.admin_helpers import create_admin, fresh_g_per_request, log_in, token  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(40)
SETTINGS = {"newsletter_name": "Night Shift Notes", "sender_name": "Ada Writer", "reply_to": "replies@example.com",
            "blog_url": "https://blog.example.com/", "logo_url": "", "accent_colour": "#aa3300",
            "postal_address": "1 Harbour Street\nPortsmouth PO1 2AB", "welcome_text": "Hello from {newsletter}.\n\nSee you soon.",
            "archive_enabled": "y"}


@pytest.fixture
def console(app, client):
    def forget() -> None:  # the test's app context spans its requests; in production each request has its own `g`
        for name in ("newsletter_identity", "form_token_issued"):
            g.pop(name, None)

    app.before_request_funcs.setdefault(None, []).insert(0, forget)
    create_admin()
    log_in(client)
    return client


def save(client, **changes):
    data = {**SETTINGS, **changes, "csrf_token": token(client, "/admin/settings")}
    data = {k: v for k, v in data.items() if v is not None}
    return client.post("/admin/settings", data=data, content_type="multipart/form-data")


def raw_outbox(app) -> list[bytes]:
    return [p.read_bytes() for p in sorted(Path(app.config["OUTBOX_DIR"]).glob("*.eml"))]


def parsed(data: bytes):
    return BytesParser(policy=policy.default).parsebytes(data)


def body(data: bytes) -> str:
    msg = parsed(data)
    return msg.get_body(("plain",)).get_content() + msg.get_body(("html",)).get_content()


def by_subject(app, start: str) -> bytes:
    found = [m for m in raw_outbox(app) if str(parsed(m)["Subject"]).startswith(start)]
    assert found, [str(parsed(m)["Subject"]) for m in raw_outbox(app)]
    return found[-1]


def reader_gets_everything(app) -> Digest:
    """Ann signs up, confirms, gets her welcome mail and then a digest: all of it sent to the dev outbox."""
    subscriptions.subscribe(db.session, SignupRequest(email="ann@example.com", name="Ann"))
    db.session.commit()
    sender.deliver_due()
    subscriptions.confirm_subscription(db.session, db.session.scalar(select(Consent.id)))
    db.session.commit()
    sender.deliver_due()
    factories.post()
    digest = digests.create_digest(db.session)
    db.session.commit()
    sender.deliver_due()
    return digest


# --- the settings, and where they show ------------------------------------------------------------------------

def test_settings_show_on_pages_the_embed_and_the_console(app, console):
    assert save(console).status_code == 302
    assert db.session.get(NewsletterSettings, 1).newsletter_name == "Night Shift Notes"
    page = console.get("/").get_data(as_text=True)
    assert "<title>Night Shift Notes newsletter</title>" in page and "Career Q&amp;A" not in page
    embed = console.get("/embed").get_data(as_text=True)
    assert "From Night Shift Notes." in embed
    css_url = re.search(r'href="(/brand\.css\?v=[0-9a-f]+)"', embed).group(1)
    css = console.get(css_url)
    assert "--accent: #aa3300" in css.get_data(as_text=True) and "immutable" in css.headers["Cache-Control"]
    assert "background:\" + accent" in console.get("/embed.js").get_data(as_text=True)
    assert '"#aa3300"' in console.get("/embed.js").get_data(as_text=True)
    assert "Night Shift Notes <span>mailer</span>" in console.get("/admin/").get_data(as_text=True)
    settings_page = console.get("/admin/settings").get_data(as_text=True)
    assert "newsletter@localhost" in settings_page and "MAIL_FROM" in settings_page


def test_defaults_before_anything_is_saved(app, console):
    page = console.get("/admin/settings").get_data(as_text=True)
    assert 'value="Career Q&amp;A"' in page and 'value="#1f4e79"' in page
    reader_gets_everything(app)
    welcome = by_subject(app, "Welcome to Career Q&A")
    assert b"From: Career Q&A <newsletter@localhost>" in welcome and b"Reply-To" not in welcome


def test_every_mail_uses_the_settings_from_the_next_mail_on(app, console):
    assert save(console).status_code == 302
    digest = reader_gets_everything(app)
    confirmation, welcome = by_subject(app, "Confirm your"), by_subject(app, "Welcome to Night Shift Notes")
    digest_mail = by_subject(app, "Career Q&A: Can You")
    for data in (confirmation, welcome, digest_mail):
        head = data.split(b"\r\n\r\n", 1)[0]
        assert b'\r\nFrom: Ada Writer <newsletter@localhost>\r\n' in b"\r\n" + head
        assert b"\r\nReply-To: replies@example.com\r\n" in head
        assert "1 Harbour Street" in body(data) and "Portsmouth PO1 2AB" in body(data)
        assert "Career Q&A" not in body(data).replace("Career Q&amp;A: Can You", "").replace("Career Q&A: Can You", "")
    assert b'List-Id: Night Shift Notes <newsletter.' in digest_mail
    assert "Hello from Night Shift Notes." in body(welcome) and "See you soon." in body(welcome)
    assert f"View in your browser: http://mailer.test/archive/{digest.id}" in body(digest_mail)
    assert "background-color: #aa3300" in body(confirmation) or "background: #aa3300" in body(confirmation)

    # A change in the console shows in the very next digest, in the same worker process.
    assert save(console, newsletter_name="Day Shift Notes", postal_address="PO Box 9").status_code == 302
    factories.post(title="A second post", n=2)
    digests.create_digest(db.session)
    db.session.commit()
    sender.deliver_due()
    second = by_subject(app, "A second post")
    assert b'List-Id: Day Shift Notes <' in second and "PO Box 9" in body(second)
    assert "subscribed to Day Shift Notes" in body(second)


@pytest.mark.parametrize("field, value", [
    ("sender_name", "Ada\r\nBcc: victim@example.com"),
    ("sender_name", "Ada\nBcc: victim@example.com"),
    ("newsletter_name", "News\u2028Bcc: victim@example.com"),
    ("sender_name", "=?utf-8?q?Ada=0D=0ABcc:_victim@example.com?="),
    ("reply_to", "me@example.com\r\nBcc: victim@example.com"),
    ("reply_to", "me@example.com, victim@example.com"),
    ("reply_to", "Ada <me@example.com>"),
    ("accent_colour", "red;}body{display:none"),
    ("blog_url", "javascript:alert(1)"),
    ("logo_url", "http://insecure.example.com/logo.png"),
])
def test_what_could_add_a_header_or_break_a_page_is_refused(app, console, field, value):
    answer = save(console, **{field: value})
    assert answer.status_code == 400
    assert 'class="field-error"' in answer.get_data(as_text=True)
    assert db.session.get(NewsletterSettings, 1) is None


def test_an_uploaded_logo_is_served_from_the_database_with_its_hash_in_the_url(app, console):
    answer = save(console, logo_file=(io.BytesIO(PNG), "logo.png"))
    assert answer.status_code == 302
    digest = hashlib.sha256(PNG).hexdigest()
    logo = console.get(f"/brand/logo/{digest}")
    assert logo.status_code == 200 and logo.data == PNG and logo.mimetype == "image/png"
    assert "max-age=31536000" in logo.headers["Cache-Control"] and "immutable" in logo.headers["Cache-Control"]
    assert console.get("/brand/logo/" + "0" * 64).status_code == 404
    assert f'src="http://mailer.test/brand/logo/{digest}"' in console.get("/").get_data(as_text=True)
    reader_gets_everything(app)
    assert f'src="http://mailer.test/brand/logo/{digest}"' in body(by_subject(app, "Confirm your"))
    # Removing it takes the old URL away.
    assert save(console, remove_logo="y").status_code == 302
    assert console.get(f"/brand/logo/{digest}").status_code == 404


@pytest.mark.parametrize("data, message", [
    (b"<svg onload=alert(1)></svg>", "must be a PNG, JPEG or GIF"),
    (PNG + bytes(300 * 1024), "at most 200 KB"),
])
def test_a_logo_of_the_wrong_kind_or_size_gets_a_clear_400(app, console, data, message):
    answer = save(console, logo_file=(io.BytesIO(data), "logo.png"))
    assert answer.status_code == 400 and message in answer.get_data(as_text=True)
    assert db.session.get(NewsletterSettings, 1) is None


# --- the archive ------------------------------------------------------------------------------------------------

def test_the_archive_lists_and_shows_sent_digests_without_personal_links(app, console):
    digest = reader_gets_everything(app)
    factories.post(title="Held back", n=2)
    cancelled = digests.create_digest(db.session, subject="Never mind")
    db.session.commit()
    digests.cancel(db.session, cancelled)
    db.session.commit()
    listing = console.get("/archive").get_data(as_text=True)
    assert f'href="/archive/{digest.id}"' in listing and "Never mind" not in listing
    page = console.get(f"/archive/{digest.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'href="https://blog.example.com/post-1/"' in html
    for personal in ("/c/", "/o/", "/unsubscribe", "/preferences", "%%MAILER", "ann@example.com", "Ann"):
        assert personal not in html, personal
    assert console.get(f"/archive/{cancelled.id}").status_code == 404
    missing = console.get("/archive/999999")
    assert missing.status_code == 404 and "No such issue" in missing.get_data(as_text=True)


def test_the_archive_pages_newest_first(app, console):
    factories.subscribers(1)
    made = []
    for n in range(1, 24):
        factories.post(title=f"Post number {n}", n=n)
        made.append(digests.create_digest(db.session).id)
        db.session.commit()
    first = console.get("/archive").get_data(as_text=True)
    ids = [int(i) for i in re.findall(r'href="/archive/(\d+)"', first)]
    assert ids == sorted(made, reverse=True)[:20]
    older = re.search(r'href="(/archive\?before=\d+)"', first).group(1)
    rest = [int(i) for i in re.findall(r'href="/archive/(\d+)"', console.get(older).get_data(as_text=True))]
    assert rest == sorted(made, reverse=True)[20:]


def test_the_archive_feed_is_valid_atom(app, console):
    digest = reader_gets_everything(app)
    answer = console.get("/archive/feed.atom")
    assert answer.mimetype == "application/atom+xml"
    feed = feedparser.parse(answer.data)
    assert not feed.bozo, feed.bozo_exception
    assert feed.version == "atom10" and feed.feed.title == "Career Q&A"
    [entry] = feed.entries
    assert entry.link == f"http://mailer.test/archive/{digest.id}" and entry.title == digest.subject


def test_with_the_archive_off_its_pages_answer_404_and_mails_leave_the_link_out(app, console):
    assert save(console, archive_enabled=None).status_code == 302
    digest = reader_gets_everything(app)
    for path in ("/archive", f"/archive/{digest.id}", "/archive/feed.atom"):
        assert console.get(path).status_code == 404, path
    mail = body(by_subject(app, "Career Q&A: Can You"))
    assert "View in your browser" not in mail and "/archive/" not in mail
