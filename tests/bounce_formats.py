"""The bounce fixtures by the MTA whose shape each has, and what each must come to (tests and bench/ share it)."""
from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).parent / "fixtures" / "bounces"
NOT_A_FAILURE = "nothing"

# (fixture, the shape it has, the kind of event it must record: hard_bounce, soft_bounce or nothing)
FORMATS = [
    ("postfix-hard-bounce.eml", "Postfix DSN (multipart/report)", "hard_bounce"),
    ("gmail-hard-bounce.eml", "Gmail DSN", "hard_bounce"),
    ("office365-hard-bounce.eml", "Exchange Online / Office 365 NDR", "hard_bounce"),
    ("exchange-2003-hard-bounce.eml", "Exchange IMS text (multipart/mixed)", "hard_bounce"),
    ("postfix-old-hard-bounce.eml", "old Postfix (multipart/mixed)", "hard_bounce"),
    ("qmail-hard-bounce.eml", "qmail (QSBMF)", "hard_bounce"),
    ("exim-hard-bounce.eml", "Exim classic text", "hard_bounce"),
    ("sendmail-hard-bounce.eml", "sendmail classic text", "hard_bounce"),
    ("yahoo-hard-bounce.eml", "Yahoo (report without delivery-status part)", "hard_bounce"),
    ("dsn-no-report-type.eml", "X.400 gateway DSN without report-type", "hard_bounce"),
    ("opensmtpd-action-error.eml", "OpenSMTPD DSN, 'Action: error' (multipart/mixed)", "hard_bounce"),
    ("aol-hard-bounce.eml", "AOL text", "hard_bounce"),
    ("groupwise-hard-bounce.eml", "GroupWise text", "hard_bounce"),
    ("postfix-delayed.eml", "Postfix delayed DSN (mailbox full, 4.2.2)", "soft_bounce"),
    ("qmail-queue-too-long.eml", "qmail gave up on a full mailbox (4.2.2)", "soft_bounce"),
    ("exim-mailbox-full.eml", "Exim: over quota, retry timeout exceeded", "soft_bounce"),
    ("exim-delayed.eml", "Exim delay warning (greylisting, 4.7.1)", "soft_bounce"),
    ("sendmail-warning.eml", "sendmail 4-hour warning (deferred)", "soft_bounce"),
    ("dovecot-quota-rejection.eml", "Dovecot rejection in MDN form (quota exceeded)", "soft_bounce"),
    ("challenge-response.eml", "unrecognised (challenge-response), to a VERP address", "soft_bounce"),
    ("out-of-office.eml", "out-of-office reply", NOT_A_FAILURE),
    ("exchange-out-of-office.eml", "Exchange automatic reply", NOT_A_FAILURE),
    ("gmail-vacation-reply.eml", "Gmail vacation responder", NOT_A_FAILURE),
    ("postfix-relayed.eml", "Postfix relayed DSN (success)", NOT_A_FAILURE),
    ("read-receipt.eml", "read receipt (MDN)", NOT_A_FAILURE),
]


def sample(name: str, verp_address: str, email: str = "reader@example.com", **replace: str) -> bytes:
    """A stored bounce or report, addressed to `verp_address` about `email`."""
    text = (SAMPLES / name).read_text().replace("{verp}", verp_address).replace("{email}", email)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text.encode()
