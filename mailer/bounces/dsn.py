"""Reading a bounce (any format an MTA sends, see classify) or a complaint (RFC 5965 feedback report)."""
from __future__ import annotations

import hashlib
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser, HeaderParser

from .classify import NotABounce, address_in as _address, classify_report
from .events import COMPLAINT, Report
from .verp import LOCAL_PART, delivery_from_address

__all__ = ["NotABounce", "parse"]

HEADERS_NAMING_US = ("Delivered-To", "X-Original-To", "Envelope-To", "To")  # where an MTA puts our VERP address
# A VERP address quoted anywhere in the report (a text bounce's copy of the mail): it counts only if it verifies.
_VERP_IN_TEXT = re.compile(rb"\b" + LOCAL_PART.encode() + rb"\+\d{1,18}-[a-z2-7]{10}@[a-z0-9.-]{1,253}", re.IGNORECASE)


def parse(raw: bytes, envelope_recipient: str | None = None) -> Report:
    """The event this message reports; the delivery only from a VERP address whose signature verifies."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    event_id = str(msg["Message-ID"] or "").strip() or "sha256:" + hashlib.sha256(raw).hexdigest()
    addressed_to = [envelope_recipient, *(str(v) for h in HEADERS_NAMING_US for v in msg.get_all(h) or [])]
    original = _original_headers(msg)
    returned_from = [str(original["Return-Path"] or "")] if original is not None else []
    if _is_feedback_report(msg):
        kind, email, detail, sender = _feedback(_part(msg, "message/feedback-report"))
        delivery_id = _delivery([*addressed_to, *returned_from, sender])
    else:
        # Whatever comes to one of our VERP addresses is a report about that delivery (classify says which).
        delivery_id = _delivery(addressed_to)
        verdict = classify_report(msg, for_a_delivery=delivery_id is not None)
        kind, email, detail = verdict.kind, verdict.email, verdict.detail
        if delivery_id is None:
            quoted = [m.decode("ascii") for m in _VERP_IN_TEXT.findall(raw[:1_000_000])[:20]]
            delivery_id = _delivery([*returned_from, _postfix_sender(msg), *quoted])
    if original is not None:
        email = email or _address(original["To"])
    return Report(kind, event_id, email, delivery_id, detail)


def _delivery(addresses: list[str | None]) -> int | None:
    return next((d for a in addresses if a and (d := delivery_from_address(a)) is not None), None)


def _is_feedback_report(msg: EmailMessage) -> bool:
    if str(msg.get_param("report-type") or "").lower() == "feedback-report":
        return True
    return msg.get_content_type() == "multipart/report" and any(
        part.get_content_type() == "message/feedback-report" for part in msg.walk())


def _part(msg: EmailMessage, content_type: str) -> list[EmailMessage]:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            payload = part.get_payload()
            if isinstance(payload, list):
                return payload
    raise NotABounce(f"a report without its {content_type} part: cannot tell what happened")


def _postfix_sender(msg: EmailMessage) -> str:
    """The envelope sender Postfix names in its delivery status fields (X-Postfix-Sender)."""
    for part in msg.walk():
        if part.get_content_type() == "message/delivery-status" and isinstance(part.get_payload(), list):
            for block in part.get_payload():
                if block["X-Postfix-Sender"]:
                    return _address(block["X-Postfix-Sender"]) or ""
    return ""


def _feedback(blocks: list[EmailMessage]) -> tuple[str, str | None, str, str]:
    fields = blocks[0] if blocks else EmailMessage()
    feedback_type = str(fields["Feedback-Type"] or "abuse").strip().lower()
    if feedback_type == "not-spam":
        raise NotABounce("a feedback report of type not-spam: nothing to suppress")
    detail = f"feedback {feedback_type} from {str(fields['User-Agent'] or 'unknown').strip()}"
    return COMPLAINT, _address(fields["Original-Rcpt-To"]), detail, _address(fields["Original-Mail-From"]) or ""


def _original_headers(msg: EmailMessage) -> EmailMessage | None:
    """The headers of the mail that bounced or was reported, when the report returns them."""
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822" and isinstance(part.get_payload(), list):
            return part.get_payload()[0]
        if part.get_content_type() == "text/rfc822-headers":
            return HeaderParser(policy=policy.default).parsestr(part.get_content())
    return None
