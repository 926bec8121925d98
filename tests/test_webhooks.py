"""Bounce webhooks: SES via SNS (signed), Postmark (Basic auth), SendGrid (ECDSA), raw DSNs (API token)."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from mailer import config as settings
from mailer.api_tokens import create_token
from mailer.bounces import sns, verp
from mailer.config import ConfigError
from mailer.extensions import db
from mailer.models import MailEvent, Subscriber
from tests.test_bounces import add_subscriber, fresh, owe, sample
from tests.test_openapi_fuzz import (
    BROKEN_URLS,
    FUZZ,
    HOSTILE,
    any_text,
    emails,
    json_values,
    row_counts,
    text,
    unchanged_unless_accepted,
)

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-6aad65c2f9911b05cd53efda11f913f9.pem"


def events() -> int:
    return db.session.scalar(select(func.count()).select_from(MailEvent))


def nothing_changed(sub: Subscriber) -> bool:
    return events() == 0 and fresh(sub).status == "confirmed"


# --- Amazon SES through SNS ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def signer():
    """Our own key and self-signed certificate, standing in for Amazon's."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def fetched(monkeypatch, signer):
    """Replace only the network fetch: Amazon's hosts are outside this machine."""
    urls: list[str] = []

    def fetch(url: str) -> bytes:
        urls.append(url)
        return signer[1] if url.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"
    monkeypatch.setattr(sns, "fetch", fetch)
    monkeypatch.setattr(sns, "_certificates", {})
    return urls


@pytest.fixture
def ses_app(app):
    app.config["SES_TOPIC_ARNS"] = [TOPIC]
    return app


def sns_message(signer, message: dict | str, type_: str = "Notification", version: str = "1", **fields) -> dict:
    body = {"Type": type_, "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", "TopicArn": TOPIC,
            "Message": message if isinstance(message, str) else json.dumps(message),
            "Timestamp": "2024-05-15T09:13:06.123Z", "SignatureVersion": version, "SigningCertURL": CERT_URL, **fields}
    if type_ != "Notification":
        body.setdefault("Token", "2336412f37fb687f5d51e6e2425f004aed7b2b8d")
        body.setdefault("SubscribeURL", "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336")
    names = sns.SIGNED_FIELDS[type_]
    text = "".join(f"{n}\n{body[n]}\n" for n in names if n in body)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    body["Signature"] = base64.b64encode(signer[0].sign(text.encode(), padding.PKCS1v15(), digest)).decode()
    return body


def ses_bounce(email: str, bounce_type: str = "Permanent", source: str = "newsletter@mailer.test") -> dict:
    return {"notificationType": "Bounce",
            "bounce": {"bounceType": bounce_type, "bounceSubType": "General", "feedbackId": "0102018f7a-fb-000000",
                       "bouncedRecipients": [{"emailAddress": email, "action": "failed", "status": "5.1.1",
                                              "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
            "mail": {"messageId": "0102018f7a-msg-000000", "source": source, "destination": [email]}}


def post_sns(client, body: dict | str):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post("/webhooks/ses", data=data, headers={"Content-Type": "text/plain; charset=UTF-8",
                                                            "x-amz-sns-message-type": "Notification"})


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_ses_hard_bounce_bounces_the_subscriber(ses_app, client, signer, fetched, version):
    sub = add_subscriber()
    response = post_sns(client, sns_message(signer, ses_bounce(sub.email), version=version))
    assert response.status_code == 200, response.json
    assert response.json == {"recorded": 1, "duplicates": 0}
    assert fresh(sub).status == "bounced" and fetched == [CERT_URL]
    assert db.session.scalar(select(MailEvent.event_key)) == f"ses:0102018f7a-fb-000000:{sub.email}"
    again = post_sns(client, sns_message(signer, ses_bounce(sub.email), version=version))
    assert again.json == {"recorded": 0, "duplicates": 1} and fetched == [CERT_URL]  # certificate cached


def test_ses_transient_bounces_are_soft_and_complaints_suppress(ses_app, client, signer, fetched):
    sub, other = add_subscriber(), add_subscriber("other@example.com")
    delivery = owe(sub, "welcome:1", "sent")
    soft = ses_bounce("renamed@example.com", "Transient", source=verp.envelope_sender(delivery.id))
    assert post_sns(client, sns_message(signer, soft)).status_code == 200
    event = db.session.scalar(select(MailEvent))
    assert (event.kind, event.subscriber_id) == ("soft_bounce", sub.id)  # found by the VERP source, not the address
    complaint = {"notificationType": "Complaint", "mail": {"messageId": "m2", "source": "newsletter@mailer.test"},
                 "complaint": {"feedbackId": "f2", "complaintFeedbackType": "abuse",
                               "complainedRecipients": [{"emailAddress": other.email}]}}
    assert post_sns(client, sns_message(signer, complaint)).status_code == 200
    assert fresh(sub).status == "confirmed" and fresh(other).status == "complained"
    delivered = {"notificationType": "Delivery", "mail": {"messageId": "m3"}, "delivery": {}}
    assert post_sns(client, sns_message(signer, delivered)).json == {"recorded": 0, "duplicates": 0}


def test_a_subscription_is_confirmed_only_at_amazon(ses_app, client, signer, fetched):
    subscribe = sns_message(signer, "You have chosen to subscribe to the topic", "SubscriptionConfirmation")
    response = post_sns(client, subscribe)
    assert response.status_code == 200 and response.json == {"confirmed": TOPIC}
    assert fetched == [CERT_URL, subscribe["SubscribeURL"]]
    for elsewhere in ("https://evil.example.com/confirm", "https://amazonaws.com.evil.example/confirm",
                      "https://notamazonaws.com/confirm", "http://sns.eu-west-1.amazonaws.com/confirm"):
        evil = sns_message(signer, "subscribe", "SubscriptionConfirmation", SubscribeURL=elsewhere)
        assert post_sns(client, evil).status_code == 400
    assert fetched == [CERT_URL, subscribe["SubscribeURL"]]


@pytest.mark.parametrize("spoil", ["tampered", "unsigned", "foreign cert", "lookalike cert host", "not a pem",
                                   "http cert", "other topic", "version"])
def test_an_sns_message_that_does_not_verify_gets_401_and_changes_nothing(ses_app, client, signer, fetched, spoil):
    sub = add_subscriber()
    body = sns_message(signer, ses_bounce(sub.email))
    if spoil == "tampered":
        body["Message"] = body["Message"].replace("Permanent", "Transient")
    elif spoil == "unsigned":
        del body["Signature"]
    elif spoil == "foreign cert":
        body = sns_message(signer, ses_bounce(sub.email), SigningCertURL="https://sns.evil.example.com/cert.pem")
    elif spoil == "lookalike cert host":
        body = sns_message(signer, ses_bounce(sub.email),
                           SigningCertURL="https://sns.eu-west-1.amazonaws.com.evil.example/cert.pem")
    elif spoil == "not a pem":
        body = sns_message(signer, ses_bounce(sub.email), SigningCertURL=CERT_URL.replace(".pem", ".cgi"))
    elif spoil == "http cert":
        body = sns_message(signer, ses_bounce(sub.email), SigningCertURL=CERT_URL.replace("https:", "http:"))
    elif spoil == "other topic":
        body = sns_message(signer, ses_bounce(sub.email), TopicArn="arn:aws:sns:eu-west-1:999999999999:mine")
    else:
        body["SignatureVersion"] = "3"
    response = post_sns(client, body)
    assert response.status_code == 401 and response.json["error"]
    assert nothing_changed(sub)
    assert all(url == CERT_URL for url in fetched)  # no certificate fetched from anywhere else


def test_ses_malformed_bodies_get_400_and_an_unconfigured_endpoint_404(app, client, signer, fetched):
    sub = add_subscriber()
    response = post_sns(client, sns_message(signer, ses_bounce(sub.email)))
    assert response.status_code == 404 and "SES_TOPIC_ARNS" in response.json["error"]
    app.config["SES_TOPIC_ARNS"] = [TOPIC]
    for body in ("{not json", "[1, 2]", sns_message(signer, "not json inside"),
                 sns_message(signer, {"notificationType": "Bounce", "bounce": {}})):
        assert post_sns(client, body).status_code == 400
    assert nothing_changed(sub)


def test_an_unreachable_certificate_asks_sns_to_retry(ses_app, client, signer, monkeypatch):
    def down(url):
        raise OSError("network unreachable")
    monkeypatch.setattr(sns, "fetch", down)
    monkeypatch.setattr(sns, "_certificates", {})
    sub = add_subscriber()
    response = post_sns(client, sns_message(signer, ses_bounce(sub.email)))
    # The one 5xx on purpose: SNS redelivers on 5xx, and the bounce must not be lost to a network blip.
    assert response.status_code == 503 and response.headers["Retry-After"] == "60"
    assert nothing_changed(sub)


# --- Postmark --------------------------------------------------------------------------------------------

@pytest.fixture
def postmark_app(app):
    app.config.update(POSTMARK_WEBHOOK_USER="postmark", POSTMARK_WEBHOOK_PASSWORD="s3cret-webhook-pass")
    return app


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def postmark_bounce(email: str, type_: str = "HardBounce", record: str = "Bounce", id_: int = 4323372036854775807):
    return {"RecordType": record, "ID": id_, "Type": type_, "TypeCode": 1, "MessageStream": "outbound",
            "Email": email, "Description": "The server was unable to deliver your message (ex: unknown user, "
            "mailbox not found).", "Details": "smtp;550 5.1.1 The email account does not exist.",
            "BouncedAt": "2024-05-15T09:13:06Z", "Inactive": True, "CanActivate": True}


def test_postmark_bounces_and_complaints_with_the_right_credentials(postmark_app, client):
    hard, soft, spam = add_subscriber("hard@example.com"), add_subscriber("soft@example.com"), add_subscriber("spam@example.com")
    good = basic("postmark", "s3cret-webhook-pass")
    for body in (postmark_bounce(hard.email), postmark_bounce(soft.email, "SoftBounce", id_=2),
                 postmark_bounce(spam.email, "SpamComplaint", "SpamComplaint", id_=3),
                 postmark_bounce(soft.email, "AutoResponder", id_=4)):
        response = client.post("/webhooks/postmark", json=body, headers=good)
        assert response.status_code == 200, response.json
    assert [fresh(s).status for s in (hard, soft, spam)] == ["bounced", "confirmed", "complained"]
    assert db.session.scalar(select(MailEvent.kind).where(MailEvent.email == soft.email)) == "soft_bounce"
    assert events() == 3  # the auto-reply is not a bounce
    assert client.post("/webhooks/postmark", json=postmark_bounce(hard.email), headers=good).json["duplicates"] == 1


@pytest.mark.parametrize("headers", [{}, basic("postmark", "wrong"), basic("someone", "s3cret-webhook-pass"),
                                     basic("postmark", ""), {"Authorization": "Bearer s3cret-webhook-pass"}])
def test_postmark_with_wrong_or_missing_credentials_gets_401(postmark_app, client, headers):
    sub = add_subscriber()
    response = client.post("/webhooks/postmark", json=postmark_bounce(sub.email), headers=headers)
    assert response.status_code == 401 and "credentials" in response.json["error"]
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert nothing_changed(sub)


def test_postmark_malformed_or_unconfigured(app, client):
    sub = add_subscriber()
    response = client.post("/webhooks/postmark", json=postmark_bounce(sub.email), headers=basic("a", "b"))
    assert response.status_code == 404 and "POSTMARK_WEBHOOK_USER" in response.json["error"]
    app.config.update(POSTMARK_WEBHOOK_USER="postmark", POSTMARK_WEBHOOK_PASSWORD="pw")
    for data in ("not json", "[]", json.dumps({"RecordType": "Bounce", "Type": "HardBounce"}), "[" * 50_000):
        response = client.post("/webhooks/postmark", data=data, headers={**basic("postmark", "pw"),
                                                                        "Content-Type": "application/json"})
        assert response.status_code == 400 and "Malformed" in response.json["error"]
    assert nothing_changed(sub)


# --- SendGrid --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sendgrid_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def sendgrid_app(app, sendgrid_key):
    der = sendgrid_key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = base64.b64encode(der).decode()
    return app


def post_sendgrid(client, key, body: bytes, timestamp: str = "1715764386", signed_timestamp: str | None = None):
    signature = key.sign((signed_timestamp or timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return client.post("/webhooks/sendgrid", data=body, headers={
        "Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode()})


def sendgrid_event(email: str, event: str, n: int, **extra) -> dict:
    return {"email": email, "timestamp": 1715764380, "event": event, "sg_event_id": f"sg-{n}-ZmFrZQ",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", "smtp-id": "<14c5d75ce93@x>", **extra}


def test_sendgrid_signed_events(sendgrid_app, client, sendgrid_key):
    hard, blocked, dropped, spam = (add_subscriber(f"{n}@example.com") for n in ("hard", "blocked", "dropped", "spam"))
    batch = [sendgrid_event(hard.email, "bounce", 1, type="bounce", status="5.1.1", reason="550 5.1.1 no such user"),
             sendgrid_event(blocked.email, "bounce", 2, type="blocked", status="4.0.0", reason="421 try later"),
             sendgrid_event(dropped.email, "dropped", 3, reason="Bounced Address"),
             sendgrid_event(spam.email, "spamreport", 4),
             sendgrid_event(spam.email, "delivered", 5), sendgrid_event(hard.email, "open", 6)]
    response = post_sendgrid(client, sendgrid_key, json.dumps(batch).encode())
    assert response.status_code == 200 and response.json == {"recorded": 4, "duplicates": 0}
    assert [fresh(s).status for s in (hard, blocked, dropped, spam)] == ["bounced", "confirmed", "bounced", "complained"]
    assert post_sendgrid(client, sendgrid_key, json.dumps(batch).encode()).json == {"recorded": 0, "duplicates": 4}


@pytest.mark.parametrize("spoil", ["other key", "other timestamp", "other body", "no signature", "garbage signature"])
def test_sendgrid_with_a_bad_signature_gets_401_and_changes_nothing(sendgrid_app, client, sendgrid_key, spoil):
    sub = add_subscriber()
    body = json.dumps([sendgrid_event(sub.email, "bounce", 1, type="bounce")]).encode()
    if spoil == "other key":
        response = post_sendgrid(client, ec.generate_private_key(ec.SECP256R1()), body)
    elif spoil == "other timestamp":
        response = post_sendgrid(client, sendgrid_key, body, timestamp="1715764999", signed_timestamp="1715764386")
    elif spoil == "other body":
        signature = sendgrid_key.sign(b"1715764386" + body, ec.ECDSA(hashes.SHA256()))
        response = client.post("/webhooks/sendgrid", data=body.replace(b"bounce", b"spamreport", 1), headers={
            "X-Twilio-Email-Event-Webhook-Timestamp": "1715764386",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode()})
    elif spoil == "no signature":
        response = client.post("/webhooks/sendgrid", data=body, content_type="application/json")
    else:
        response = client.post("/webhooks/sendgrid", data=body, headers={
            "X-Twilio-Email-Event-Webhook-Timestamp": "1715764386", "X-Twilio-Email-Event-Webhook-Signature": "%%%"})
    assert response.status_code == 401 and "Signature" in response.json["error"]
    assert nothing_changed(sub)


def test_sendgrid_malformed_or_unconfigured(app, client, sendgrid_key):
    sub = add_subscriber()
    body = json.dumps([sendgrid_event(sub.email, "bounce", 1, type="bounce")]).encode()
    response = post_sendgrid(client, sendgrid_key, body)
    assert response.status_code == 404 and "SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json["error"]
    der = sendgrid_key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = base64.b64encode(der).decode()
    for bad in (b"not json", b'{"event": "bounce"}', b'[{"event": "bounce", "type": "bounce"}]', b"[1]"):
        assert post_sendgrid(client, sendgrid_key, bad).status_code == 400
    assert nothing_changed(sub)


def test_webhook_settings_are_checked_at_start_up(tmp_path):
    env = {"MAILER_INSTANCE": str(tmp_path)}
    with pytest.raises(ConfigError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
        settings.load({**env, "SENDGRID_WEBHOOK_PUBLIC_KEY": "bm90IGEga2V5"})
    with pytest.raises(ConfigError, match="POSTMARK_WEBHOOK_PASSWORD"):
        settings.load({**env, "POSTMARK_WEBHOOK_USER": "postmark"})
    config = settings.load({**env, "SES_TOPIC_ARNS": f"{TOPIC}, arn:aws:sns:us-east-1:1:other"})
    assert config["SES_TOPIC_ARNS"] == [TOPIC, "arn:aws:sns:us-east-1:1:other"]


# --- raw DSNs posted by an MTA ----------------------------------------------------------------------------

def test_an_mta_posts_a_dsn_with_an_api_token(app, client):
    sub = add_subscriber()
    token = create_token(db.session, "mta")
    db.session.commit()
    dsn = sample("postfix-hard-bounce.eml", verp.envelope_sender(owe(sub, "welcome:1", "sent").id))
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "message/rfc822"}

    for headers in ({"Content-Type": "message/rfc822"}, {**auth, "Authorization": "Bearer mlr_wrong"}):
        response = client.post("/webhooks/dsn", data=dsn, headers=headers)
        assert response.status_code == 401 and "API token" in response.json["error"]
    assert nothing_changed(sub)
    assert client.post("/webhooks/dsn", data=dsn, headers={**auth, "Content-Type": "text/plain"}).status_code == 415
    not_a_bounce = sample("out-of-office.eml", "fbl@mailer.test")
    response = client.post("/webhooks/dsn", data=not_a_bounce, headers=auth)
    assert response.status_code == 400 and "not a bounce" in response.json["error"]
    assert nothing_changed(sub)

    response = client.post("/webhooks/dsn", data=dsn, headers=auth)
    assert response.status_code == 200 and "now bounced" in response.json["result"]
    assert fresh(sub).status == "bounced"


# --- fuzzing, with good credentials: an event we cannot read is a 4xx that changes nothing -------------------

WEBHOOK_USER, WEBHOOK_PASSWORD = "postmark", "fuzz-webhook-pass"
postmark_events = st.fixed_dictionaries(
    {"RecordType": st.sampled_from(["Bounce", "SpamComplaint"]) | text},
    optional={"ID": st.integers() | text, "Type": st.sampled_from(["HardBounce", "SoftBounce", "SpamComplaint"]) | text,
              "Email": emails, "MessageID": text, "BouncedAt": text, "Details": text})
sendgrid_events = st.fixed_dictionaries(
    {"event": st.sampled_from(["bounce", "dropped", "spamreport", "deferred"]) | text},
    optional={"email": emails, "sg_event_id": text, "type": st.sampled_from(["bounce", "blocked"]) | text,
              "status": text, "reason": text, "timestamp": st.integers() | text})
ses_messages = st.fixed_dictionaries(
    {"notificationType": st.sampled_from(["Bounce", "Complaint", "Delivery"]) | text},
    optional={"bounce": json_values | st.fixed_dictionaries({"bounceType": st.sampled_from(["Permanent", "Transient"])
                                                            | text, "bouncedRecipients": json_values}),
              "complaint": json_values, "mail": json_values})


@FUZZ
@given(body=st.one_of(postmark_events, json_values))
def test_postmark_events_of_any_shape(client, body):
    client.application.config.update(POSTMARK_WEBHOOK_USER=WEBHOOK_USER, POSTMARK_WEBHOOK_PASSWORD=WEBHOOK_PASSWORD)
    before = row_counts()
    response = client.post("/webhooks/postmark", json=body, headers=basic(WEBHOOK_USER, WEBHOOK_PASSWORD))
    unchanged_unless_accepted(before, response.status_code)


@FUZZ
@given(body=st.one_of(st.lists(sendgrid_events, max_size=4), json_values, st.binary(max_size=200)))
def test_signed_sendgrid_batches_of_any_shape(client, sendgrid_key, body):
    der = sendgrid_key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    client.application.config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = base64.b64encode(der).decode()
    before = row_counts()
    response = post_sendgrid(client, sendgrid_key, body if isinstance(body, bytes) else json.dumps(body).encode())
    unchanged_unless_accepted(before, response.status_code)


@FUZZ
@given(message=st.one_of(ses_messages, json_values, text))
def test_signed_ses_notifications_of_any_shape(client, signer, fetched, message):
    client.application.config["SES_TOPIC_ARNS"] = [TOPIC]
    before = row_counts()
    response = post_sns(client, sns_message(signer, message if isinstance(message, str) else json.dumps(message)))
    unchanged_unless_accepted(before, response.status_code)


@FUZZ
@given(url=st.one_of(st.sampled_from(BROKEN_URLS + HOSTILE), any_text,
                     st.builds(lambda a, b: f"https://{a}sns.eu-west-1.amazonaws.com{b}/c.pem", any_text, any_text)),
       message=ses_messages)
def test_signing_cert_urls_of_any_shape_are_refused_unless_amazons(client, signer, fetched, url, message):
    client.application.config["SES_TOPIC_ARNS"] = [TOPIC]
    before = row_counts()
    response = post_sns(client, sns_message(signer, json.dumps(message), SigningCertURL=url))
    unchanged_unless_accepted(before, response.status_code)
    assert all(sns.CERT_HOST.fullmatch(urlsplit(u).hostname or "") and "@" not in u and "\\" not in u
               for u in fetched), fetched


def nested(depth: int, multipart: bool) -> bytes:
    """A message with parts in parts `depth` deep, deeper than the email package recurses at 3,000."""
    if multipart:
        heads = b"".join(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
                         for i in range(depth))
        ends = b"".join(f"\r\n--b{i}--\r\n".encode() for i in reversed(range(depth)))
        return b"From: mailer-daemon@example.net\r\n" + heads + b"Content-Type: text/plain\r\n\r\nx" + ends
    return (b"From: mailer-daemon@example.net\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * depth
            + b"Subject: x\r\n\r\nbody\r\n")


@FUZZ
@given(raw=st.one_of(st.binary(max_size=2000), st.builds(lambda head, tail: head + tail, st.sampled_from(
    [sample(name, "bounces+1-x@mailer.test") for name in ("postfix-hard-bounce.eml", "postfix-delayed.eml",
                                                          "yahoo-complaint.eml")]), st.binary(max_size=200)),
    st.builds(nested, st.sampled_from([1, 50, 3000]), st.booleans())))
def test_dsn_messages_of_any_shape(client, raw):
    token = getattr(client.application, "_fuzz_token", None) or create_token(db.session, "mta")
    db.session.commit()
    client.application._fuzz_token = token
    before = row_counts()
    response = client.post("/webhooks/dsn", data=raw, headers={"Authorization": f"Bearer {token}",
                                                                "Content-Type": "message/rfc822"})
    unchanged_unless_accepted(before, response.status_code)
