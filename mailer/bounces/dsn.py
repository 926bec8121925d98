"""Reading a bounce (RFC 3464 delivery status notification) or a complaint (RFC 5965 feedback report)."""
from __future__ import annotations

import hashlib
import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser, HeaderParser
from email.utils import parseaddr

from .events import COMPLAINT, HARD, SOFT, Report
from .verp import delivery_from_address

HEADERS_NAMING_US = ("Delivered-To", "X-Original-To", "Envelope-To", "To")  # where an MTA puts our VERP address
_ADDRESS_TYPE = re.compile(r"^\s*(rfc822|utf-8)\s*;", re.IGNORECASE)  # RFC 3464 / RFC 6533 address types


class NotABounce(ValueError):
    """The message is neither a delivery status notification nor a feedback report."""


def parse(raw: bytes, envelope_recipient: str | None = None) -> Report:
    """The event this message reports; the delivery only from a VERP address whose signature verifies."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    if msg.get_content_type() != "multipart/report":
        raise NotABounce(f"not a bounce or complaint report: its Content-Type is {msg.get_content_type()}, "
                         "not multipart/report (an auto-reply or a person's mail?)")
    report_type = str(msg.get_param("report-type") or "").lower()
    event_id = str(msg["Message-ID"] or "").strip() or "sha256:" + hashlib.sha256(raw).hexdigest()
    addresses = [envelope_recipient, *(str(v) for h in HEADERS_NAMING_US for v in msg.get_all(h) or [])]
    if report_type == "delivery-status":
        kind, email, detail, sender = _delivery_status(_part(msg, "message/delivery-status"))
    elif report_type == "feedback-report":
        kind, email, detail, sender = _feedback(_part(msg, "message/feedback-report"))
    else:
        raise NotABounce(f"a multipart/report of type {report_type or '(none)'!r}: only delivery-status "
                         "(bounces) and feedback-report (complaints) are processed")
    original = _original_headers(msg)
    if original is not None:
        email = email or _address(original["To"])
        addresses.append(str(original["Return-Path"] or ""))
    addresses.append(sender)
    delivery_id = next((d for a in addresses if a and (d := delivery_from_address(a)) is not None), None)
    return Report(kind, event_id, email, delivery_id, detail)


def _part(msg: EmailMessage, content_type: str) -> list[EmailMessage]:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            payload = part.get_payload()
            if isinstance(payload, list):
                return payload
    raise NotABounce(f"a report without its {content_type} part: cannot tell what happened")


def _delivery_status(blocks: list[EmailMessage]) -> tuple[str, str | None, str, str]:
    """(kind, recipient, detail, envelope sender) from the per-message and per-recipient fields."""
    sender = next((_address(b["X-Postfix-Sender"]) for b in blocks if b["X-Postfix-Sender"]), "") or ""
    for block in blocks:
        action = str(block["Action"] or "").strip().lower()
        status = str(block["Status"] or "").strip().split(" ")[0]
        if action == "failed":
            # RFC 3463: 5.x.x is permanent; a "failed" 4.x.x means the MTA gave up retrying.
            kind = SOFT if status.startswith("4") else HARD
        elif action == "delayed":
            kind = SOFT
        else:
            continue
        email = _address(block["Final-Recipient"]) or _address(block["Original-Recipient"])
        detail = f"{action} {status} {block['Diagnostic-Code'] or ''}".strip()
        return kind, email, " ".join(detail.split()), sender
    raise NotABounce("a delivery status notification that reports no failure or delay (delivered or relayed): "
                     "nothing to do")


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


def _address(field) -> str | None:
    """The address in 'rfc822; user@example.com', '<user@example.com>' or 'Name <user@example.com>'."""
    value = _ADDRESS_TYPE.sub("", str(field or ""))
    address = parseaddr(value)[1]
    return address if "@" in address else None
