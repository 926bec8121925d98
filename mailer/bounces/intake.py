"""Recording reports from any source, and saying in a sentence what came of them."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import MailEvent, Subscriber
from .dsn import NotABounce, parse
from .events import Report, event_key, record_event
from .mailto_unsubscribe import unsubscribe_by_mail


def record_dsn(session: Session, raw: bytes, envelope_recipient: str | None = None) -> str:
    """Record one DSN or feedback report (NotABounce if it is neither); returns what was done."""
    try:
        # First: a message to List-Unsubscribe's mailto address is a request, whatever it looks like.
        if (unsubscribed := unsubscribe_by_mail(session, raw, envelope_recipient)) is not None:
            return unsubscribed
        report = parse(raw, envelope_recipient)
    except RecursionError:
        # The email package parses and walks nested parts recursively: thousands deep is no report an MTA sends.
        raise NotABounce("the message is nested too deeply (parts within parts) to be read as a report") from None
    # Anyone can mail us a made-up report: only a signed VERP address may suppress someone.
    if not record_event(session, "dsn", report.event_id, report.kind, report.email, report.delivery_id,
                        report.detail, match_email=False):
        return f"Already recorded ({report.event_id}): nothing more to do."
    event = session.scalar(select(MailEvent).where(MailEvent.event_key == event_key("dsn", report.event_id)))
    about = f"{report.kind.replace('_', ' ')} for {event.email or 'an unknown address'}"
    if report.delivery_id is None:
        return (f"Recorded {about}, but it names none of our deliveries (no VERP address that verifies), "
                "so nobody was suppressed.")
    if event.subscriber_id is None:
        return f"Recorded {about} (delivery {report.delivery_id}); no subscriber to act on."
    status = session.get(Subscriber, event.subscriber_id).status
    return f"Recorded {about} (delivery {report.delivery_id}): subscriber {event.subscriber_id} is now {status}."


def record_reports(session: Session, provider: str, reports: list[Report]) -> dict[str, int]:
    """Record a provider's (authenticated) reports; counts of new and repeated events."""
    counts = {"recorded": 0, "duplicates": 0}
    for report in reports:
        new = record_event(session, provider, report.event_id, report.kind, report.email, report.delivery_id,
                           report.detail)
        counts["recorded" if new else "duplicates"] += 1
    return counts
