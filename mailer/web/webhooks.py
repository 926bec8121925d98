"""/webhooks: bounces and complaints pushed by an MTA (raw DSN) or a provider (SES, Postmark, SendGrid)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .. import json_input
from ..api_tokens import find_token, missing_scope, presented_token
from ..bounces import sns
from ..bounces.dsn import NotABounce
from ..bounces.intake import record_dsn, record_reports
from ..bounces.providers import MalformedPayload, postmark_reports, sendgrid_reports, ses_reports
from ..bounces.webhook_auth import postmark_authorized, sendgrid_signed
from ..extensions import csrf, db

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)  # machines authenticated by token, credentials or signature: no cookie to ride on


def _error(status: int, message: str, **headers: str):
    return jsonify(error=message), status, headers


def _json(body: bytes):
    try:
        return json_input.loads(body)
    except ValueError:
        raise MalformedPayload("the body is not JSON") from None


@bp.errorhandler(MalformedPayload)
def malformed(exc: MalformedPayload):
    db.session.rollback()
    return _error(400, f"Malformed body: {exc}.")


@bp.post("/dsn")
def dsn():
    found = find_token(db.session, presented_token(request.headers.get("Authorization", "")))
    if found is None:
        return _error(401, "Send an API token: 'Authorization: Bearer <token>' (create one with "
                           "`mailer api-token create NAME`).", **{"WWW-Authenticate": 'Bearer realm="mailer"'})
    refused = missing_scope(found, "bounces")
    if refused:
        db.session.commit()  # its last use is shown in the token list, refused or not
        return _error(403, refused)
    if request.mimetype != "message/rfc822":
        return _error(415, "Send the bounce as the raw message with Content-Type: message/rfc822.")
    try:
        outcome = record_dsn(db.session, request.get_data(), request.args.get("recipient"))
    except NotABounce as exc:
        raise MalformedPayload(str(exc)) from None
    db.session.commit()
    return jsonify(result=outcome)


@bp.post("/ses")
def ses():
    topics = current_app.config.get("SES_TOPIC_ARNS") or []
    if not topics:
        return _error(404, "Amazon SES notifications are off: set SES_TOPIC_ARNS to the ARN of the SNS topic.")
    message = _json(request.get_data())
    if not isinstance(message, dict):
        raise MalformedPayload("an SNS message is a JSON object")
    try:
        sns.verify(message)
    except sns.InvalidMessage as exc:
        return _error(401, f"Not a genuine SNS message: {exc}.")
    except sns.CertificateUnavailable as exc:
        # Not the sender's fault and not final: a 5xx is what makes SNS deliver the message again.
        return _error(503, f"{exc}; SNS will retry.", **{"Retry-After": "60"})
    if message["TopicArn"] not in topics:
        return _error(401, f"Topic {message['TopicArn'][:200]} is not accepted: add it to SES_TOPIC_ARNS.")
    if message["Type"] == "SubscriptionConfirmation":
        try:
            sns.confirm_subscription(message["SubscribeURL"])
        except sns.InvalidMessage as exc:
            raise MalformedPayload(str(exc)) from None
        except OSError as exc:
            return _error(503, f"Could not confirm the subscription ({exc}); SNS will retry.", **{"Retry-After": "60"})
        return jsonify(confirmed=message["TopicArn"])
    if message["Type"] == "UnsubscribeConfirmation":
        return jsonify(ignored="UnsubscribeConfirmation")
    counts = record_reports(db.session, "ses", ses_reports(message["Message"]))
    db.session.commit()
    return jsonify(counts)


@bp.post("/postmark")
def postmark():
    config = current_app.config
    if not config.get("POSTMARK_WEBHOOK_USER") or not config.get("POSTMARK_WEBHOOK_PASSWORD"):
        return _error(404, "Postmark webhooks are off: set POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD, "
                           "and put the same credentials in the webhook's URL at Postmark.")
    auth = request.authorization
    if auth is None or auth.type != "basic" or not postmark_authorized(auth.username, auth.password, config):
        return _error(401, "Wrong or missing webhook credentials (HTTP Basic).",
                      **{"WWW-Authenticate": 'Basic realm="mailer webhooks"'})
    counts = record_reports(db.session, "postmark", postmark_reports(_json(request.get_data())))
    db.session.commit()
    return jsonify(counts)


@bp.post("/sendgrid")
def sendgrid():
    config = current_app.config
    if not config.get("SENDGRID_WEBHOOK_PUBLIC_KEY"):
        return _error(404, "SendGrid webhooks are off: set SENDGRID_WEBHOOK_PUBLIC_KEY to the Signed Event "
                           "Webhook's verification key.")
    body = request.get_data()
    if not sendgrid_signed(config, request.headers.get("X-Twilio-Email-Event-Webhook-Signature"),
                           request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp"), body):
        return _error(401, "Missing or wrong X-Twilio-Email-Event-Webhook-Signature for this body and timestamp.")
    counts = record_reports(db.session, "sendgrid", sendgrid_reports(_json(body)))
    db.session.commit()
    return jsonify(counts)
