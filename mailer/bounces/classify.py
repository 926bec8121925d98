"""What a message that came back says about a delivery: a hard or soft bounce, or nothing to act on.

The rules run from the most exact to the loosest: RFC 3464 delivery status fields, then Mailman's
detectors for the formats MTAs really send (flufl.bounce), then the SMTP reply and enhanced status
codes in the report's own text. A message none of them understands is an auto-reply when it looks
like one; otherwise, when it came to one of our VERP addresses, a soft bounce whose text is kept.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.utils import parseaddr

from flufl.bounce import all_failures

from .events import HARD, SOFT

log = logging.getLogger(__name__)
logging.getLogger("flufl.bounce").setLevel(logging.WARNING)  # it logs each detector it tries at INFO

UNRECOGNISED = "unrecognised report, counted as a soft bounce"
_ADDRESS_TYPE = re.compile(r"^\s*(rfc822|utf-8)\s*;", re.IGNORECASE)  # RFC 3464 / RFC 6533 address types
_RETURNED = ("message/rfc822", "text/rfc822-headers", "message/delivery-status", "message/disposition-notification",
             "message/feedback-report")
# Where a text bounce starts quoting the returned mail: codes past this line are the mail's, not the report's.
_COPY_FOLLOWS = re.compile(
    r"^\s*-*\s*(?:below this line is a copy of the message|this is a copy of the message|original message follows"
    r"|message header follows|message body follows|possibly truncated original message follows"
    r"|below is a copy of the original message|forwarded message|undelivered message follows)",
    re.IGNORECASE | re.MULTILINE)
ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.]*\d)")
# Reply codes only where a server's answer stands: at the start of a line or after a colon ("said: 550").
_REPLY = re.compile(r"(?:^|:)[ \t>]*(421|45[0-5]|5[0-5][0-7])(?=[ \t:-]|$)", re.MULTILINE)
MAILBOX_FULL = re.compile(
    r"mailbox (?:is )?full|over (?:the |his |her |their )?quota|quota (?:exceeded|violation)"
    r"|exceed\w* (?:the |his |her |their )?(?:mailbox |storage |disk )?(?:quota|storage)"
    r"|insufficient (?:system )?storage|out of storage|(?:mailbox|inbox) (?:is )?out of (?:storage|space)",
    re.IGNORECASE)
_STILL_TRYING = re.compile(
    r"warning (?:message )?only|will be retried|still being retried|delivery attempts will continue"
    r"|will keep trying|has not yet been delivered|not yet been delivered|could not be delivered for more than"
    r"|\bdelayed\b|\bdeferred\b|try again later",
    re.IGNORECASE)
_GONE = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient|address)|no mailbox here|mailbox unavailable"
    r"|mailbox not found|(?:does not|doesn't) exist|(?:does not|doesn't) have an? [\w.]+ account|address rejected"
    r"|recipient rejected|invalid recipient|unknown recipient|recipient (?:name )?is not recognized|user not found"
    r"|account (?:has been )?(?:disabled|discontinued|deactivated)|not accepting mail|undeliverable to",
    re.IGNORECASE)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(?:re:\s*)?(?:out of (?:the )?office|automatic reply|auto(?:matic)?[ -]?(?:reply|response)|autoreply"
    r"|vacation|away from|absence|abwesenheit|réponse automatique|respuesta automática|risposta automatica)",
    re.IGNORECASE)
_AUTO_REPLY_WORDS = re.compile(
    r"out of (?:the )?office|on (?:vacation|holiday|leave)|away from (?:the office|my desk|email)"
    r"|limited access to (?:e-?mail|my e-?mail)|currently away|I am away|I'm away|annual leave"
    r"|(?:will|shall) (?:be )?(?:back|return) (?:on|in|after)|when I(?:'m| am) back",
    re.IGNORECASE)
_AUTO_REPLY_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Vacation", "X-MS-Exchange-Organization-AutoReplyType")


class NotABounce(ValueError):
    """The message reports no failure: not a bounce or complaint, or a delivery that went well."""


@dataclass(frozen=True)
class Verdict:
    """A bounce as one rule read it: its kind, the failed address when it names one, and what it said."""

    kind: str
    email: str | None
    detail: str


def classify_report(msg: EmailMessage, for_a_delivery: bool) -> Verdict:
    """The bounce this message reports; NotABounce for a read receipt, a success, an auto-reply or unknown mail."""
    if _is_read_receipt(msg):
        raise NotABounce("a read receipt (message disposition notification), not a failure: nothing to do")
    text = notification_text(msg)
    verdict = from_delivery_status(msg) or from_bounce_detectors(msg, text) or from_reply_codes(text)
    if verdict is not None:
        return verdict
    if looks_like_auto_reply(msg, text):
        raise NotABounce("an auto-reply (out of office, vacation), not a bounce: nothing to do")
    if not for_a_delivery:
        raise NotABounce("not a bounce or complaint that any rule recognises, and not sent to one of our VERP "
                         "addresses (a person's mail?)")
    subject = " ".join(str(msg["Subject"] or "").split())
    return Verdict(SOFT, None, f"{UNRECOGNISED}: Subject: {subject or '(none)'}; {_squeeze(text)}"[:1000])


def from_delivery_status(msg: EmailMessage) -> Verdict | None:
    """RFC 3464 per-recipient fields, wherever the part sits (report-type missing, multipart/mixed)."""
    blocks = [block for part in msg.walk() if part.get_content_type() == "message/delivery-status"
              and isinstance(part.get_payload(), list) for block in part.get_payload()]
    failures, delivered = [], False
    for block in blocks:
        action = str(block["Action"] or "").strip().lower()
        status = str(block["Status"] or "").strip().split(" ")[0]
        diagnostic = str(block["Diagnostic-Code"] or "")
        code = status if ENHANCED.fullmatch(status) else _first_enhanced(diagnostic)
        if action.startswith(("delivered", "relayed", "expanded")) or (not action and code.startswith("2")):
            delivered = True
            continue
        if action.startswith("delayed"):
            kind = SOFT
        elif action.startswith(("fail", "error")) or code[:1] in ("4", "5"):
            # RFC 3463: 5.x.x is permanent; a "failed" 4.x.x means the MTA gave up retrying; X.2.2 is a full mailbox.
            kind = HARD if code[:1] != "4" and not _is_mailbox_full(code, diagnostic) else SOFT
        else:
            continue  # an Action and Status that say nothing about this recipient
        email = address_in(block["Final-Recipient"]) or address_in(block["Original-Recipient"])
        detail = " ".join(f"{action or 'failed'} {status or code} {diagnostic}".split())
        failures.append(Verdict(kind, email, detail))
    if failures:
        return next((v for v in failures if v.kind == HARD), failures[0])
    if delivered:
        raise NotABounce("a delivery status notification that reports no failure or delay (delivered or relayed): "
                         "nothing to do")
    return None


def from_bounce_detectors(msg: EmailMessage, text: str) -> Verdict | None:
    """Mailman's detectors (flufl.bounce) for the formats MTAs really send: the failed address and its permanence."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector tripped over a malformed message: the next rule reads it
        log.debug("flufl.bounce could not read the message", exc_info=True)
        return None
    if not temporary and not permanent:
        return None
    addresses = sorted(a.decode("ascii", "replace") for a in (permanent or temporary))
    # A permanent failure whose own codes say "full" or only 4.x.x: the server gave up on a temporary cause.
    kind = HARD if permanent and _text_kind(text) != SOFT else SOFT
    word = "permanent" if kind == HARD else "temporary"
    return Verdict(kind, addresses[0], f"{word} failure of {', '.join(addresses)}: {_diagnostic(text)}"[:1000])


def from_reply_codes(text: str) -> Verdict | None:
    """SMTP reply codes, enhanced status codes and the usual words in the report's text."""
    kind = _text_kind(text)
    if kind is None:
        return None
    return Verdict(kind, None, f"{'permanent' if kind == HARD else 'temporary'} failure: {_diagnostic(text)}"[:1000])


def looks_like_auto_reply(msg: EmailMessage, text: str) -> bool:
    """Vacation and out-of-office replies; Auto-Submitted alone is no sign, MTAs put it on bounces too."""
    if any(msg[h] is not None for h in _AUTO_REPLY_HEADERS) or str(msg["Precedence"] or "").strip() == "auto_reply":
        return True
    return bool(_AUTO_REPLY_SUBJECT.match(str(msg["Subject"] or "")) or _AUTO_REPLY_WORDS.search(text))


def notification_text(msg: EmailMessage) -> str:
    """The report's own words: its text parts, without the returned message."""
    plain, html = [], []
    stack: list[Message] = [msg]
    while stack:
        part = stack.pop(0)
        content_type = part.get_content_type()
        if content_type in _RETURNED:
            continue
        if part.is_multipart():
            payload = part.get_payload()
            stack[:0] = [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []
        elif content_type == "text/plain":
            plain.append(_decoded(part))
        elif content_type == "text/html":
            html.append(re.sub(r"<[^>]*>", " ", _decoded(part)))
    text = "\n".join(plain or html)
    cut = _COPY_FOLLOWS.search(text)
    return text[:cut.start()] if cut else text


def _text_kind(text: str) -> str | None:
    if MAILBOX_FULL.search(text) or _STILL_TRYING.search(text):
        return SOFT
    enhanced = [m.group(0) for m in ENHANCED.finditer(text) if m.group(1) != "2"]
    if enhanced:
        return HARD if any(c.startswith("5") and not c.endswith(".2.2") for c in enhanced) else SOFT
    replies = [m.group(1) for m in _REPLY.finditer(text)]
    if replies:
        return HARD if any(c.startswith("5") and c != "552" for c in replies) else SOFT
    return HARD if _GONE.search(text) else None


def _is_mailbox_full(code: str, diagnostic: str) -> bool:
    return code.endswith(".2.2") or bool(MAILBOX_FULL.search(diagnostic))


def _is_read_receipt(msg: EmailMessage) -> bool:
    """An MDN, unless it is a mail server's rejection in MDN form (Dovecot: automatic-action ...; deleted)."""
    dispositions = [str(block["Disposition"] or "").lower() for part in msg.walk()
                    if part.get_content_type() == "message/disposition-notification"
                    and isinstance(part.get_payload(), list) for block in part.get_payload()]
    if any("automatic-action" in d and "deleted" in d for d in dispositions):
        return False
    return bool(dispositions) or str(msg.get_param("report-type") or "").lower() == "disposition-notification"


def _first_enhanced(text: str) -> str:
    match = ENHANCED.search(text)
    return match.group(0) if match else ""


def _diagnostic(text: str) -> str:
    """The lines that say why: from the first code or telling phrase, else the report's opening."""
    for pattern in (ENHANCED, _REPLY, MAILBOX_FULL, _GONE, _STILL_TRYING):
        match = pattern.search(text)
        if match:
            start = text.rfind("\n", 0, match.start()) + 1
            return _squeeze(text[start:start + 400])[:300]
    return _squeeze(text)[:300]


def _decoded(part: Message) -> str:
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else part.get_payload(decode=True)
    except (LookupError, ValueError, AssertionError):  # an unknown charset or a broken transfer encoding
        content = part.get_payload(decode=True)
    if isinstance(content, bytes):
        return content.decode("utf-8", "replace")
    return content if isinstance(content, str) else ""


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def address_in(field) -> str | None:
    """The address in 'rfc822; user@example.com', '<user@example.com>' or 'Name <user@example.com>'."""
    value = _ADDRESS_TYPE.sub("", str(field or ""))
    address = parseaddr(value)[1]
    return address if "@" in address else None
