"""The reader's pages: the thanks page and sending the link again, unsubscribe, and mails promised only when owed."""
from __future__ import annotations

import re
from datetime import timedelta

import itsdangerous.timed
import pytest
from sqlalchemy import select

from mailer import links, tokens
from mailer.extensions import db
from mailer.outbox import ledger
from mailer.models import Consent, Status, Subscriber, aware
from mailer.web.mailboxes import mailbox_for, masked
from tests.conftest import csrf_from
from tests.factories import deliveries, subscriber

FROM = "Career Q&A <newsletter@localhost>"


@pytest.fixture
def client(either_app):
    """On SQLite and on PostgreSQL, where a signup (and so sending the link again) is a statement of its own."""
    return either_app.test_client()


def sign_up(client, email: str, **headers):
    return client.post("/subscribe", data={"email": email}, headers=headers)


def send_again(client, page) -> object:
    token = re.search(r'name="token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post("/subscribe/again", data={"token": token})


def age(sub: Subscriber, by: timedelta) -> None:
    for delivery in deliveries(sub):
        delivery.created_at -= by
    db.session.commit()


def path(url: str) -> str:
    return url.removeprefix("http://mailer.test")


# --- the thanks page --------------------------------------------------------------------------------

@pytest.mark.parametrize(("address", "provider"), [
    ("ann@gmail.com", "Gmail"), ("ann@googlemail.com", "Gmail"), ("ann@outlook.com", "Outlook"),
    ("ann@hotmail.com", "Outlook"), ("ann@live.com", "Outlook"), ("ann@yahoo.com", "Yahoo Mail"),
    ("ann@icloud.com", "iCloud Mail"), ("ann@me.com", "iCloud Mail"), ("ann@proton.me", "Proton Mail"),
    ("ann@protonmail.com", "Proton Mail"), ("ann@gmx.de", "GMX"), ("ann@gmx.com", "GMX"), ("ann@GMAIL.COM", "Gmail"),
])
def test_a_known_domain_opens_its_webmail(address, provider):
    assert mailbox_for(address, FROM).name == provider


def test_gmail_opens_on_a_search_for_our_sender_and_an_unknown_domain_gets_no_mailbox():
    assert mailbox_for("ann@gmail.com", FROM).url == \
        "https://mail.google.com/mail/u/0/#search/from%3Anewsletter%40localhost+in%3Aanywhere"
    assert mailbox_for("ann@example.com", FROM) is None
    assert mailbox_for("ann@gmail.com.evil.example", FROM) is None


@pytest.mark.parametrize(("address", "shown"), [("ann@example.com", "a…@example.com"), ("a@example.com", "a…@example.com"),
                                                ("not-an-address", "…")])
def test_an_address_is_masked_to_its_first_letter_and_domain(address, shown):
    assert masked(address) == shown


def test_the_thanks_page_names_the_newsletter_and_the_masked_address_and_opens_the_mailbox(client):
    page = sign_up(client, "ann.reader@gmail.com", Referer="https://blog.example.com/2024/05/career-qa")
    text = page.get_data(as_text=True)

    assert page.status_code == 200 and "Almost there" in text
    assert "Career Q&amp;A" in text and "a…@gmail.com" in text
    assert "ann.reader@gmail.com" not in text  # only the masked form, in the page and in no URL
    assert 'href="https://mail.google.com/mail/u/0/#search/from%3Anewsletter%40' in text and "Open Gmail" in text
    assert "spam" in text and "Send the link again" in text
    assert 'href="https://blog.example.com/2024/05/career-qa"' in text and "Back to the blog" in text


def test_the_thanks_page_of_an_unknown_domain_has_no_mailbox_button(client):
    text = sign_up(client, "ann@example.com").get_data(as_text=True)
    assert "a…@example.com" in text and "Open " not in text and 'id="open-mailbox"' not in text


# --- sending the link again -------------------------------------------------------------------------

def test_sending_again_owes_a_confirmation_only_outside_the_throttle(client):
    first = sign_up(client, "ann@example.com")
    ann = subscriber("ann@example.com")
    at_once = send_again(client, first)  # within 15 minutes of the first: nothing more
    assert at_once.status_code == 200
    assert "If this address can receive a new link, it is on its way." in at_once.get_data(as_text=True)
    assert len(deliveries(ann, "confirmation")) == 1

    age(ann, timedelta(minutes=20))
    later = send_again(client, at_once)
    assert "it is on its way" in later.get_data(as_text=True)
    assert len(deliveries(ann, "confirmation")) == 2


@pytest.mark.parametrize("state", ["pending", "confirmed", "unsubscribed", "bounced"])
def test_sending_again_answers_every_address_alike(client, state):
    reference = send_again(client, sign_up(client, "new@example.com")).get_data()
    first = sign_up(client, "old@example.com")
    sub = subscriber("old@example.com")
    sub.status = state
    db.session.commit()

    answer = send_again(client, first)

    assert answer.status_code == 200
    def same(page: bytes) -> bytes:
        return re.sub(rb'name="token" value="[^"]*"|[no]\xe2\x80\xa6@', b"", page)
    assert same(answer.get_data()) == same(reference)


def test_a_submission_taken_for_a_bot_can_be_sent_again_and_nothing_happens(client):
    bot = client.post("/subscribe", data={"email": "bot@example.com", "website": "http://spam.example"})
    assert "Send the link again" in bot.get_data(as_text=True)

    again = send_again(client, bot)

    assert again.status_code == 200 and "it is on its way" in again.get_data(as_text=True)
    assert subscriber("bot@example.com") is None


def test_sending_again_with_an_altered_or_old_token_is_a_400(client, monkeypatch):
    page = sign_up(client, "ann@example.com")
    token = re.search(r'name="token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert client.post("/subscribe/again", data={"token": token[:-3] + "abc"}).status_code == 400
    assert client.post("/subscribe/again", data={}).status_code == 400
    real = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() - 2 * 24 * 3600)
    old = tokens.make(tokens.RESEND, {"e": "ann@example.com", "m": None, "u": None})
    monkeypatch.undo()
    answer = client.post("/subscribe/again", data={"token": old})
    assert answer.status_code == 400 and "Sign up again" in answer.get_data(as_text=True)


# --- unsubscribe --------------------------------------------------------------------------------------

def _confirmed(client, email: str = "ann@example.com") -> Subscriber:
    sign_up(client, email)
    sub = subscriber(email)
    sub.status, sub.confirmed_at = Status.CONFIRMED.value, sub.created_at
    db.session.commit()
    return sub


def test_the_unsubscribe_page_names_the_address_and_offers_fewer_emails(client):
    sub = _confirmed(client)
    url = path(links.unsubscribe_url(sub.id))
    page = client.get(url)
    text = page.get_data(as_text=True)
    assert "ann@example.com" in text and "Fewer emails instead" in text and 'class="danger">Unsubscribe' in text

    fewer = client.post(f"{url}/fewer", data={"csrf_token": csrf_from(page.data)})

    db.session.refresh(sub)
    assert fewer.status_code == 200 and "a monthly summary" in fewer.get_data(as_text=True)
    assert (sub.status, sub.digest_frequency) == (Status.CONFIRMED.value, "monthly")
    assert "Fewer emails instead" not in fewer.get_data(as_text=True)  # already fewer


def test_fewer_emails_needs_the_csrf_token(client):
    sub = _confirmed(client)
    assert client.post(path(links.unsubscribe_url(sub.id)) + "/fewer").status_code == 400
    db.session.refresh(sub)
    assert sub.digest_frequency == "every"


def test_once_unsubscribed_the_link_says_so_and_offers_to_subscribe_again(client):
    sub = _confirmed(client)
    url = path(links.unsubscribe_url(sub.id))
    age(sub, timedelta(minutes=20))
    client.post(url, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")

    page = client.get(url)
    text = page.get_data(as_text=True)
    assert "You are unsubscribed" in text and "Subscribe again" in text
    assert "Unsubscribe?" not in text and "Fewer emails" not in text

    again = client.post(f"{url}/again", data={"csrf_token": csrf_from(page.data)})
    assert "A new confirmation link arrives" in again.get_data(as_text=True)
    assert len(deliveries(sub, "confirmation")) == 2

    held = client.post(f"{url}/again", data={"csrf_token": csrf_from(page.data)})  # at once: throttled
    held_text = held.get_data(as_text=True)
    assert "arrives" not in held_text and "a few minutes ago" in held_text
    assert len(deliveries(sub, "confirmation")) == 2


# --- a mail promised only when it is owed -------------------------------------------------------------

def _try_again_at(sub: Subscriber, kind: str) -> str:
    latest = max(aware(d.created_at) for d in deliveries(sub, kind))
    return (latest + timedelta(minutes=15)).strftime("%H:%M")


def test_an_expired_download_link_renewed_within_the_throttle_says_when_to_try_again(client, monkeypatch):
    sub = _confirmed(client)
    ledger.queue(db.session, "magnet", sub.id, f"magnet:{sub.id}:first", magnet_id=1)
    db.session.commit()
    age(sub, timedelta(minutes=5))
    real = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() - 8 * 24 * 3600)
    token = tokens.make(tokens.DOWNLOAD, {"s": sub.id, "m": 1})
    monkeypatch.undo()
    expired = client.get(f"/download/{token}")
    assert expired.status_code == 410

    answer = client.post(f"/download/{token}/renew", data={"csrf_token": csrf_from(expired.data)})

    text = answer.get_data(as_text=True)
    assert "on its way" not in text and "arrives" not in text
    assert "a few minutes ago" in text and "may take a while" in text and "spam" in text
    assert f"try again after {_try_again_at(sub, 'magnet')} UTC" in text
    assert len(deliveries(sub, "magnet")) == 1


def test_the_preferences_page_says_when_a_fresh_link_may_be_mailed_again(client):
    sub = _confirmed(client)
    url = path(links.preferences_url(sub.id))
    csrf = csrf_from(client.get(url).data)
    first = client.post(url, data={"csrf_token": csrf, "action": "download"}).get_data(as_text=True)
    second = client.post(url, data={"csrf_token": csrf, "action": "download"}).get_data(as_text=True)

    assert "on its way by email" in first
    assert "on its way" not in second and f"try again after {_try_again_at(sub, 'magnet')} UTC" in second


def test_the_preferences_page_sets_unsubscribing_apart_as_a_danger(client):
    sub = _confirmed(client)
    text = client.get(path(links.preferences_url(sub.id))).get_data(as_text=True)
    zone = text[text.index('class="danger-zone"'):]
    assert "<details>" in zone and 'name="confirm" value="yes" required' in zone and 'class="danger"' in zone
    assert 'class="danger"' not in text[:text.index('class="danger-zone"')]


def test_subscribing_again_from_an_old_confirm_link_within_the_throttle_promises_no_mail(client):
    sign_up(client, "ann@example.com")
    ann = subscriber("ann@example.com")
    consent = db.session.scalars(select(Consent).where(Consent.subscriber_id == ann.id)).one()
    ann.status = Status.UNSUBSCRIBED.value
    db.session.commit()
    url = path(links.confirm_url(consent.id))

    answer = client.post(f"{url}/again", data={"csrf_token": csrf_from(client.get(url).data)})

    text = answer.get_data(as_text=True)
    assert "arrives" not in text and "a few minutes ago" in text
    assert f"try again after {_try_again_at(ann, 'confirmation')} UTC" in text
    assert len(deliveries(ann, "confirmation")) == 1
