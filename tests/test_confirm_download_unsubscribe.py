"""The links in the mail: confirm (GET shows, POST confirms), download (and renew), unsubscribe (RFC 8058)."""
from __future__ import annotations

import re
import time
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import itsdangerous.timed
import pytest
from sqlalchemy import func, select

from mailer import links, tokens
from mailer.extensions import db
from mailer.models import Consent, DeliveryStatus, Download, Status, Subscriber, utcnow
from mailer.outbox import ledger, sender
from tests.conftest import csrf_from
from tests.factories import deliveries, subscriber

BASE_URL = "http://mailer.test"
SPAM_NAME = "Visit cheap-pills.example now"
EIGHT_DAYS = 8 * 24 * 3600


# --- helpers ---------------------------------------------------------------------------------------

def mailbox(app, to: str | None = None) -> list:
    """Every message the file transport wrote, oldest first (optionally only those to one address)."""
    directory = Path(app.config["OUTBOX_DIR"])
    messages = []
    for path in sorted(directory.glob("*.eml")) if directory.exists() else []:
        with path.open("rb") as f:
            messages.append(BytesParser(policy=policy.default).parse(f))
    return [m for m in messages if to is None or m["To"].addresses[0].addr_spec == to]


def subject(msg) -> str:
    # Python folds a long Subject right after the colon; the value then starts with the folding space.
    return str(msg["Subject"]).strip()


def link_in(msg, path_prefix: str) -> str:
    """The first link to BASE_URL + path_prefix in the text part, as a path for the test client."""
    text = msg.get_body(("plain",)).get_content()
    url = re.search(re.escape(BASE_URL + path_prefix) + r"[^\s<>\"]+", text).group(0)
    return url[len(BASE_URL):]


def sign_up(client, app, email: str, name: str | None = None) -> str:
    """Sign up through the API, send the outbox, and return the confirm link's path from the mail."""
    body = {"email": email} if name is None else {"email": email, "name": name}
    assert client.post("/subscribe", json=body).status_code == 202
    sender.deliver_due()
    (confirmation,) = [m for m in mailbox(app, email) if "Confirm" in m["Subject"]]
    return link_in(confirmation, "/confirm/")


def confirm(client, path: str):
    page = client.get(path)
    assert page.status_code == 200
    return client.post(path, data={"csrf_token": csrf_from(page.data)})


def confirmed(client, app, email: str) -> Subscriber:
    response = confirm(client, sign_up(client, app, email))
    assert response.status_code == 200
    return subscriber(email)


@pytest.mark.parametrize("source, back", [("https://blog.example.com/2024/05/career-qa", True),
                                          ("https://evil.example/login", False), ("javascript:alert(1)", False)])
def test_the_confirmed_page_links_back_only_to_the_blog(client, app, source, back):
    assert client.post("/subscribe", json={"email": "ann@example.com", "source": source}).status_code == 202
    sender.deliver_due()
    (confirmation,) = [m for m in mailbox(app, "ann@example.com") if "Confirm" in m["Subject"]]
    page = confirm(client, link_in(confirmation, "/confirm/"))
    assert page.status_code == 200
    assert ("Back to the blog" in page.text) is back
    assert "evil.example" not in page.text and "javascript:" not in page.text


def old_token(monkeypatch, purpose: str, payload, age: int) -> str:
    """A genuine token signed `age` seconds ago."""
    with monkeypatch.context() as m:
        m.setattr(itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: int(time.time()) - age)
        return tokens.make(purpose, payload)


def tampered(path_or_token: str) -> str:
    """Alter the token's first character: it lies in the signed payload, so the signature no longer matches.
    (Not the last one: the final base64 character of the signature carries unused bits.)"""
    head, slash, token = path_or_token.rpartition("/")
    return head + slash + ("f" if token[0] != "f" else "g") + token[1:]


def path_of(url: str) -> str:
    assert url.startswith(BASE_URL)
    return url[len(BASE_URL):]


def magnet_id(sub: Subscriber) -> int:
    return deliveries(sub, "magnet")[0].payload["magnet_id"]


# --- confirm -----------------------------------------------------------------------------------------

def test_get_on_the_confirm_link_shows_a_button_and_confirms_nothing(client, app):
    path = sign_up(client, app, "ann@example.com")

    page = client.get(path)

    assert page.status_code == 200
    assert '<form method="post">' in page.text and "<button" in page.text
    assert csrf_from(page.data)
    sub = subscriber("ann@example.com")
    assert sub.status == Status.PENDING.value and sub.confirmed_at is None
    assert [d.kind for d in deliveries(sub)] == ["confirmation"]


def test_a_mail_scanner_fetching_the_link_twice_confirms_nothing(client, app):
    path = sign_up(client, app, "ann@example.com")
    client.get(path)
    client.head(path)

    assert subscriber("ann@example.com").status == Status.PENDING.value


def test_post_confirms_and_owes_the_magnet_and_the_welcome(client, app):
    path = sign_up(client, app, "ann@example.com")

    response = confirm(client, path)

    assert response.status_code == 200
    sub = subscriber("ann@example.com")
    assert sub.status == Status.CONFIRMED.value and sub.confirmed_at is not None
    consent = db.session.scalar(select(Consent).where(Consent.subscriber_id == sub.id))
    assert consent.confirmed_at is not None
    assert sorted(d.kind for d in deliveries(sub)) == ["confirmation", "magnet", "welcome"]
    download = re.search(r'href="(http://mailer\.test/download/[^"]+)"', response.text)
    assert download, "the confirmed page shows the download link"
    with client.get(path_of(download.group(1))) as pdf:
        assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_confirming_twice_owes_one_magnet_and_one_welcome(client, app):
    path = sign_up(client, app, "ann@example.com")
    page = client.get(path)
    token = csrf_from(page.data)

    first = client.post(path, data={"csrf_token": token})
    second = client.post(path, data={"csrf_token": token})

    assert first.status_code == second.status_code == 200
    assert "We have emailed you the link too" in first.text and "A welcome email is on its way" in first.text
    # The second answer promises no mail: none is owed by it.
    assert "emailed" not in second.text and "welcome email" not in second.text and 'id="download"' in second.text
    sub = subscriber("ann@example.com")
    assert len(deliveries(sub, "magnet")) == 1
    assert len(deliveries(sub, "welcome")) == 1
    sender.deliver_due()
    subjects = sorted(m["Subject"] for m in mailbox(app, "ann@example.com"))
    assert len(subjects) == 3 and sum("Welcome" in s for s in subjects) == 1


def test_an_old_confirm_link_after_an_unsubscribe_offers_to_subscribe_again(client, app):
    from mailer.models import Delivery
    from mailer.people import subscriptions

    path = sign_up(client, app, "ann@example.com")
    token = csrf_from(client.get(path).data)
    assert confirm(client, path).status_code == 200
    sub = subscriber("ann@example.com")
    subscriptions.unsubscribe(db.session, sub.id)
    # The first confirmation an hour ago: the per-address throttle allows a new one.
    db.session.execute(Delivery.__table__.update().where(Delivery.subscriber_id == sub.id)
                       .values(created_at=utcnow() - timedelta(hours=1)))
    db.session.commit()
    owed_before = len(deliveries(sub))

    page = client.get(path)
    refused = client.post(path, data={"csrf_token": token})

    assert page.status_code == 200 and "You are unsubscribed" in page.text and "Subscribe again" in page.text
    assert refused.status_code == 409 and "You are unsubscribed" in refused.text
    db.session.expire_all()
    assert subscriber("ann@example.com").status == Status.UNSUBSCRIBED.value
    assert len(deliveries(sub)) == owed_before  # nothing owed on the withdrawn consent

    again = client.post(path + "/again", data={"csrf_token": csrf_from(page.data)})

    assert again.status_code == 200 and "Check your inbox" in again.text
    db.session.expire_all()
    assert subscriber("ann@example.com").status == Status.UNSUBSCRIBED.value  # until the new link is clicked
    sender.deliver_due()
    confirmations = [m for m in mailbox(app, "ann@example.com") if "Confirm" in m["Subject"]]
    assert len(confirmations) == 2
    new_path = link_in(confirmations[-1], "/confirm/")
    assert new_path != path
    assert confirm(client, new_path).status_code == 200
    db.session.expire_all()
    assert subscriber("ann@example.com").status == Status.CONFIRMED.value
    old, new = db.session.scalars(select(Consent).where(Consent.subscriber_id == sub.id).order_by(Consent.id)).all()
    assert new.form == "resubscribe" and new.confirmed_at is not None and new.requested_at > old.confirmed_at


@pytest.mark.parametrize("status, words", [(Status.BOUNCED, "undeliverable"), (Status.COMPLAINED, "spam")])
def test_an_old_confirm_link_never_confirms_a_bounced_or_complained_address(client, app, status, words):
    path = sign_up(client, app, "ann@example.com")
    token = csrf_from(client.get(path).data)
    sub = subscriber("ann@example.com")
    db.session.execute(Subscriber.__table__.update().where(Subscriber.id == sub.id).values(status=status.value))
    db.session.commit()
    owed_before = len(deliveries(sub))

    page = client.get(path)
    refused = client.post(path, data={"csrf_token": token})
    again = client.post(path + "/again", data={"csrf_token": token})

    assert page.status_code == 200 and words in page.text and "Subscribe again" not in page.text
    assert refused.status_code == 409 and words in refused.text
    assert again.status_code == 200
    db.session.expire_all()
    assert subscriber("ann@example.com").status == status.value
    assert len(deliveries(sub)) == owed_before
    assert db.session.scalar(select(Consent.confirmed_at).where(Consent.subscriber_id == sub.id)) is None


def test_post_without_csrf_token_is_refused_and_changes_nothing(client, app):
    path = sign_up(client, app, "ann@example.com")

    response = client.post(path)  # no token, and no session cookie either

    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "Traceback" not in response.text and "allow cookies for this site" in response.text
    sub = subscriber("ann@example.com")
    assert sub.status == Status.PENDING.value
    assert [d.kind for d in deliveries(sub)] == ["confirmation"]


def test_post_with_a_forged_csrf_token_is_refused(client, app):
    path = sign_up(client, app, "ann@example.com")
    client.get(path)

    response = client.post(path, data={"csrf_token": "forged"})

    assert response.status_code == 400
    assert subscriber("ann@example.com").status == Status.PENDING.value


def test_tampered_confirm_link_is_a_400(client, app):
    path = sign_up(client, app, "ann@example.com")

    response = client.get(tampered(path))

    assert response.status_code == 400
    assert "not valid" in response.text
    assert subscriber("ann@example.com").status == Status.PENDING.value


def test_confirm_link_of_a_deleted_signup_is_a_404(client, app):
    path = links.confirm_url(987654)[len(BASE_URL):]

    assert client.get(path).status_code == 404


def test_expired_confirm_link_is_a_410(client, app, monkeypatch):
    sign_up(client, app, "ann@example.com")
    consent_id = db.session.scalar(select(Consent.id))
    path = "/confirm/" + old_token(monkeypatch, tokens.CONFIRM, {"c": consent_id}, EIGHT_DAYS)

    response = client.get(path)

    assert response.status_code == 410
    assert "expired" in response.text
    assert subscriber("ann@example.com").status == Status.PENDING.value


def test_confirm_link_past_a_configured_max_age_is_a_410(client, app):
    path = sign_up(client, app, "ann@example.com")
    app.config["CONFIRM_LINK_MAX_AGE"] = -1

    assert client.get(path).status_code == 410


def test_confirm_link_younger_than_the_max_age_still_works(client, app, monkeypatch):
    sign_up(client, app, "ann@example.com")
    consent_id = db.session.scalar(select(Consent.id))
    path = "/confirm/" + old_token(monkeypatch, tokens.CONFIRM, {"c": consent_id}, 6 * 24 * 3600)

    assert confirm(client, path).status_code == 200
    assert subscriber("ann@example.com").status == Status.CONFIRMED.value


# --- nothing but the confirmation before confirming ----------------------------------------------

def test_only_the_confirmation_goes_to_an_unconfirmed_address(client, app):
    sign_up(client, app, "ann@example.com")
    sub = subscriber("ann@example.com")
    # Mail owed by mistake (or by a future bug) must still not go out.
    ledger.queue(db.session, "welcome", sub.id, "welcome:test")
    ledger.queue(db.session, "magnet", sub.id, "magnet:test", magnet_id=1)
    db.session.commit()

    sender.deliver_due()

    assert [subject(m) for m in mailbox(app)] == ["Confirm your subscription to get The Multigenerational Manager's Handbook"]
    statuses = {d.kind: d.status for d in deliveries(sub)}
    assert statuses == {"confirmation": "sent", "welcome": "skipped", "magnet": "skipped"}


def test_the_confirmation_carries_nothing_the_visitor_typed_but_the_address(client, app):
    sign_up(client, app, "ann@example.com", name=SPAM_NAME)
    assert subscriber("ann@example.com").name == SPAM_NAME  # stored, for after confirmation

    (msg,) = mailbox(app)
    raw = msg.as_string()
    for needle in (SPAM_NAME, "cheap-pills", "Visit"):
        assert needle not in msg["Subject"]
        assert needle not in msg.get_body(("plain",)).get_content()
        assert needle not in msg.get_body(("html",)).get_content()
        assert needle not in raw
    assert msg["To"].addresses[0].display_name == ""


# --- download ------------------------------------------------------------------------------------

def test_download_link_gives_the_pdf_and_records_the_download(client, app):
    sub = confirmed(client, app, "ann@example.com")
    sender.deliver_due()
    (magnet_mail,) = [m for m in mailbox(app, "ann@example.com") if "Your copy" in m["Subject"]]

    response = client.get(link_in(magnet_mail, "/download/"))

    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    assert "multigenerational-managers-handbook.pdf" in response.headers["Content-Disposition"]
    response.close()
    downloads = list(db.session.scalars(select(Download)))
    assert [(d.subscriber_id, d.magnet_id) for d in downloads] == [(sub.id, magnet_id(sub))]


def test_download_for_an_unconfirmed_address_is_refused(client, app):
    sign_up(client, app, "ann@example.com")
    sub = subscriber("ann@example.com")
    path = path_of(links.download_url(sub.id, 1))

    response = client.get(path)

    assert response.status_code == 404
    assert db.session.scalar(select(func.count()).select_from(Download)) == 0


def test_tampered_download_link_is_a_400(client, app):
    sub = confirmed(client, app, "ann@example.com")

    response = client.get(tampered(path_of(links.download_url(sub.id, magnet_id(sub)))))

    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert db.session.scalar(select(func.count()).select_from(Download)) == 0


def test_expired_download_link_is_a_410_with_a_form_for_a_fresh_one(client, app, monkeypatch):
    sub = confirmed(client, app, "ann@example.com")
    token = old_token(monkeypatch, tokens.DOWNLOAD, {"s": sub.id, "m": magnet_id(sub)}, EIGHT_DAYS)

    response = client.get(f"/download/{token}")

    assert response.status_code == 410
    assert f'action="/download/{token}/renew"' in response.text
    assert csrf_from(response.data)
    assert not response.data.startswith(b"%PDF")
    assert db.session.scalar(select(func.count()).select_from(Download)) == 0


def test_download_link_past_a_configured_max_age_is_a_410(client, app):
    sub = confirmed(client, app, "ann@example.com")
    path = path_of(links.download_url(sub.id, magnet_id(sub)))
    app.config["DOWNLOAD_LINK_MAX_AGE"] = -1

    assert client.get(path).status_code == 410


def test_renewing_an_expired_link_mails_a_fresh_one_throttled(client, app, monkeypatch):
    sub = confirmed(client, app, "ann@example.com")
    sender.deliver_due()
    token = old_token(monkeypatch, tokens.DOWNLOAD, {"s": sub.id, "m": magnet_id(sub)}, EIGHT_DAYS)
    renew = f"/download/{token}/renew"
    csrf = csrf_from(client.get(f"/download/{token}").data)
    for d in deliveries(sub, "magnet"):  # the first link went out 20 minutes ago
        d.created_at -= timedelta(minutes=20)
    db.session.commit()

    first = client.post(renew, data={"csrf_token": csrf})
    second = client.post(renew, data={"csrf_token": csrf})  # throttled: one per 15 minutes

    assert first.status_code == second.status_code == 200
    assert "fresh link" in first.text
    magnets = deliveries(sub, "magnet")
    assert len(magnets) == 2
    sender.deliver_due()
    fresh = [m for m in mailbox(app, "ann@example.com") if "Your copy" in m["Subject"]]
    assert len(fresh) == 2
    new_link = link_in(fresh[-1], "/download/")
    pdf = client.get(new_link)
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    pdf.close()


def test_renewing_needs_the_csrf_token(client, app, monkeypatch):
    sub = confirmed(client, app, "ann@example.com")
    for d in deliveries(sub, "magnet"):
        d.created_at -= timedelta(minutes=20)
    db.session.commit()
    token = old_token(monkeypatch, tokens.DOWNLOAD, {"s": sub.id, "m": magnet_id(sub)}, EIGHT_DAYS)

    response = client.post(f"/download/{token}/renew")

    assert response.status_code == 400
    assert len(deliveries(sub, "magnet")) == 1


def test_renewing_for_an_unsubscribed_address_mails_nothing(client, app, monkeypatch):
    sub = confirmed(client, app, "ann@example.com")
    for d in deliveries(sub, "magnet"):
        d.created_at -= timedelta(minutes=20)
    sub.status = Status.UNSUBSCRIBED.value
    db.session.commit()
    token = old_token(monkeypatch, tokens.DOWNLOAD, {"s": sub.id, "m": magnet_id(sub)}, EIGHT_DAYS)
    csrf = csrf_from(client.get(f"/download/{token}").data)

    response = client.post(f"/download/{token}/renew", data={"csrf_token": csrf})

    assert response.status_code == 200
    assert len(deliveries(sub, "magnet")) == 1


def test_renewing_with_a_tampered_token_is_a_400(client, app, monkeypatch):
    sub = confirmed(client, app, "ann@example.com")
    token = old_token(monkeypatch, tokens.DOWNLOAD, {"s": sub.id, "m": magnet_id(sub)}, EIGHT_DAYS)
    csrf = csrf_from(client.get(f"/download/{token}").data)

    response = client.post(f"/download/{tampered(token)}/renew", data={"csrf_token": csrf})

    assert response.status_code == 400
    assert len(deliveries(sub, "magnet")) == 1


# --- unsubscribe ---------------------------------------------------------------------------------

def test_get_on_the_unsubscribe_link_shows_a_page_and_changes_nothing(client, app):
    sub = confirmed(client, app, "ann@example.com")

    path = path_of(links.unsubscribe_url(sub.id))
    page = client.get(path)

    assert page.status_code == 200
    assert f'<form method="post" action="{path}">' in page.text  # the one-click URL, posted as a provider does
    assert subscriber("ann@example.com").status == Status.CONFIRMED.value
    assert {d.status for d in deliveries(sub) if d.kind != "confirmation"} == {DeliveryStatus.QUEUED.value}


def test_one_click_unsubscribe_stops_queued_and_future_mail(client, app):
    sub = confirmed(client, app, "ann@example.com")  # magnet and welcome are queued, not sent
    ledger.queue(db.session, "welcome", sub.id, "welcome-step-2", step=2)
    db.session.commit()
    before = len(mailbox(app))

    # As a mailbox provider does it (RFC 8058): a bare POST, no cookie, no CSRF token, no redirect.
    provider = app.test_client(use_cookies=False)
    response = provider.post(path_of(links.unsubscribe_url(sub.id)), data="List-Unsubscribe=One-Click",
                             content_type="application/x-www-form-urlencoded")

    assert response.status_code == 200
    assert "Location" not in response.headers
    sub = subscriber("ann@example.com")
    assert sub.status == Status.UNSUBSCRIBED.value and sub.unsubscribed_at is not None
    queued = [d for d in deliveries(sub) if d.kind != "confirmation"]
    assert queued and all(d.status == DeliveryStatus.SKIPPED.value for d in queued)

    sender.deliver_due()
    assert len(mailbox(app)) == before, "mail went out after the unsubscribe"


def test_unsubscribing_twice_is_fine(client, app):
    sub = confirmed(client, app, "ann@example.com")
    path = path_of(links.unsubscribe_url(sub.id))

    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    first_at = subscriber("ann@example.com").unsubscribed_at
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    assert subscriber("ann@example.com").unsubscribed_at == first_at


def test_tampered_unsubscribe_link_is_a_400_and_changes_nothing(client, app):
    sub = confirmed(client, app, "ann@example.com")
    path = tampered(path_of(links.unsubscribe_url(sub.id)))

    assert client.get(path).status_code == 400
    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert subscriber("ann@example.com").status == Status.CONFIRMED.value


@pytest.mark.parametrize(("purpose", "payload_of", "used_at"), [
    (tokens.DOWNLOAD, lambda s: {"s": s.id, "m": 1}, "/unsubscribe/"),
    (tokens.CONFIRM, lambda s: {"s": s.id, "c": 1}, "/unsubscribe/"),
    (tokens.UNSUBSCRIBE, lambda s: {"s": s.id, "m": 1}, "/download/"),
    (tokens.UNSUBSCRIBE, lambda s: {"s": s.id, "c": 1}, "/download/"),
])
def test_a_token_made_for_another_purpose_is_refused(client, app, purpose, payload_of, used_at):
    sub = confirmed(client, app, "ann@example.com")
    token = tokens.make(purpose, payload_of(sub))

    get = client.get(used_at + token)
    post = client.post(used_at + token, data={"List-Unsubscribe": "One-Click"})

    # The visitor is told the link does not work (no handbook, no unsubscribe page); /download/ takes no POST.
    assert get.status_code == 400 and "link is not valid" in get.text and get.mimetype == "text/html"
    if used_at == "/unsubscribe/":
        assert post.status_code == 400 and "unsubscribe link is not valid" in post.text
    else:
        assert post.status_code == 405
    assert subscriber("ann@example.com").status == Status.CONFIRMED.value
    assert db.session.scalar(select(func.count()).select_from(Download)) == 0


def test_a_download_token_is_not_a_confirm_token(client, app):
    path = sign_up(client, app, "ann@example.com")
    sub = subscriber("ann@example.com")
    forged = "/confirm/" + tokens.make(tokens.DOWNLOAD, {"c": db.session.scalar(select(Consent.id)), "s": sub.id, "m": 1})
    csrf_token = csrf_from(client.get(path).data)  # a genuine form's token: only the link is wrong

    shown = client.get(forged)
    posted = client.post(forged, data={"csrf_token": csrf_token})

    for response in (shown, posted):
        assert response.status_code == 400 and "confirmation link is not valid" in response.text
    assert subscriber("ann@example.com").status == Status.PENDING.value
    assert [d.kind for d in deliveries(sub)] == ["confirmation"]  # a confirmation would owe the handbook


def test_token_signed_with_another_secret_is_refused(client, app):
    sub = confirmed(client, app, "ann@example.com")
    foreign = itsdangerous.URLSafeTimedSerializer("not-our-secret", salt="mailer.unsubscribe").dumps({"s": sub.id})

    assert client.post(f"/unsubscribe/{foreign}", data={"List-Unsubscribe": "One-Click"}).status_code == 400
    assert subscriber("ann@example.com").status == Status.CONFIRMED.value


def test_links_survive_a_key_rotation(client, app):
    sub = confirmed(client, app, "ann@example.com")
    path = path_of(links.unsubscribe_url(sub.id))
    app.config["SECRET_KEY_FALLBACKS"] = [app.config["SECRET_KEY"]]
    app.config["SECRET_KEY"] = "a-brand-new-key"

    assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert subscriber("ann@example.com").status == Status.UNSUBSCRIBED.value


def test_links_made_during_a_rotation_are_signed_with_the_new_key(app):
    with app.app_context():
        app.config["SECRET_KEY_FALLBACKS"], app.config["SECRET_KEY"] = [app.config["SECRET_KEY"]], "a-brand-new-key"
        made = tokens.make(tokens.UNSUBSCRIBE, {"s": 42})
        app.config["SECRET_KEY_FALLBACKS"] = []  # the rotation ends: the old key is retired
        assert tokens.read(tokens.UNSUBSCRIBE, made) == {"s": 42}


def test_minted_tokens_are_the_ones_itsdangerous_makes_and_read_back(app, monkeypatch):
    from itsdangerous import TimestampSigner, URLSafeTimedSerializer

    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: 1_790_000_000)
    with app.app_context():
        made = tokens.make(tokens.UNSUBSCRIBE, {"s": 42})
        own = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="mailer.unsubscribe").dumps({"s": 42})
        assert made == own
        long_payload = [1, 2, 3, 4, "https://blog.example.com/" + "career-advice/" * 20]
        assert tokens.read(tokens.CLICK, tokens.make(tokens.CLICK, long_payload)) == long_payload
        with pytest.raises(tokens.InvalidToken):  # a salt per purpose: one kind of link never opens another
            tokens.read(tokens.CONFIRM, made)
        app.config["SECRET_KEY"] = "another-key-for-this-test"
        assert tokens.make(tokens.UNSUBSCRIBE, {"s": 42}) != made  # a new key signs at once, nothing cached
