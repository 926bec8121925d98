"""What Amazon SES, Postmark and SendGrid send about bounces and complaints, as Reports."""
from __future__ import annotations

from .. import json_input
from .events import COMPLAINT, HARD, SOFT, Report
from .verp import delivery_from_address

POSTMARK_BOUNCES = {"HardBounce": HARD, "SoftBounce": SOFT, "Transient": SOFT}


class MalformedPayload(ValueError):
    """The body is not what the provider documents."""


def ses_reports(message: str) -> list[Report]:
    """Reports in an SES notification (the SNS Message: Bounce, Complaint; others ignored)."""
    try:
        body = json_input.loads(message)
        kind = body.get("notificationType") or body.get("eventType")  # feedback notifications / event publishing
        mail = body.get("mail") or {}
        if kind == "Bounce":
            bounce = body["bounce"]
            # Undetermined: SES could not tell why; a soft bounce counts without suppressing at once.
            kind_ = HARD if bounce.get("bounceType") == "Permanent" else SOFT
            feedback, people = bounce.get("feedbackId") or mail["messageId"], bounce["bouncedRecipients"]
            detail = f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}"
        elif kind == "Complaint":
            complaint = body["complaint"]
            kind_, people = COMPLAINT, complaint["complainedRecipients"]
            feedback = complaint.get("feedbackId") or mail["messageId"]
            detail = f"complaint {complaint.get('complaintFeedbackType') or ''}".strip()
        else:
            return []
        # SES keeps our envelope sender in mail.source: the VERP address, when SES did not replace it.
        delivery_id = delivery_from_address(str(mail.get("source") or ""))
        return [Report(kind_, f"{feedback}:{p['emailAddress']}", p["emailAddress"], delivery_id,
                       f"{detail} {p.get('status') or ''} {p.get('diagnosticCode') or ''}".strip())
                for p in people]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MalformedPayload(f"not an SES notification ({type(exc).__name__}: {exc})") from None


def postmark_reports(body: dict) -> list[Report]:
    """A Postmark bounce or spam complaint webhook; other bounce types (auto-replies...) are ignored."""
    if not isinstance(body, dict) or "ID" not in body or not isinstance(body.get("Email"), str):
        raise MalformedPayload("not a Postmark bounce webhook: it needs RecordType, ID and Email")
    record_type, bounce_type = body.get("RecordType"), body.get("Type")
    if record_type == "SpamComplaint" or bounce_type == "SpamComplaint":
        kind = COMPLAINT
    elif record_type == "Bounce" and bounce_type in POSTMARK_BOUNCES:
        kind = POSTMARK_BOUNCES[bounce_type]
    else:
        return []
    detail = f"{bounce_type}: {body.get('Description') or ''} {body.get('Details') or ''}".strip()
    return [Report(kind, str(body["ID"]), body["Email"], None, detail)]


def sendgrid_reports(events: list) -> list[Report]:
    """Bounces, blocks, drops of bounced addresses and spam reports in a SendGrid event batch."""
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise MalformedPayload("not a SendGrid event batch: the body must be a JSON array of events")
    reports = []
    for event in events:
        name, reason = event.get("event"), str(event.get("reason") or "")
        if name == "bounce":
            kind = SOFT if event.get("type") == "blocked" else HARD
        elif name == "dropped" and reason == "Bounced Address":
            kind = HARD
        elif name == "spamreport":
            kind = COMPLAINT
        else:
            continue
        if not isinstance(event.get("email"), str) or not event.get("sg_event_id"):
            raise MalformedPayload("a SendGrid event without email or sg_event_id")
        reports.append(Report(kind, str(event["sg_event_id"]), event["email"], None,
                              f"{name} {event.get('status') or ''} {reason}".strip()[:1000]))
    return reports
