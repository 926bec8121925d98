"""What a page says of a mail a reader known by their link asked for: on its way only when it is owed."""
from __future__ import annotations

from sqlalchemy.orm import Session

from ..models import Status, Subscriber, utcnow
from ..people.subscriptions import SUPPRESSED, HeldBack, held_back

HELD_TITLE = "No new email this time"


def held_back_message(held: HeldBack, what: str) -> str:
    """Why no mail goes now, what to do meanwhile, and when asking again sends one (`what`: "a download link")."""
    when = held.retry_at.strftime("%H:%M UTC")
    if held.retry_at.date() != utcnow().date():
        when += held.retry_at.strftime(" on %-d %B")
    sent = (f"We sent you {what} a few minutes ago; it may take a while to arrive." if held.recently else
            f"We have sent you {what} three times today, the most we send in a day.")
    return f"{sent} Check your spam or promotions folder too. If it is not there, try again after {when}."


def subscribe_again_answer(session: Session, subscriber_id: int, owed: list[int]) -> tuple[str, str]:
    """The title and words of the page after "subscribe again": a confirmation promised only when one is owed."""
    if owed:
        return ("Check your inbox", "A new confirmation link arrives in a few minutes; nothing starts until you click "
                                    "it. Nothing there? Look in the spam or promotions folder.")
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None or subscriber.status in SUPPRESSED:
        return ("We cannot email this address", "Our emails to this address bounced or were reported, so we send it "
                                                "nothing more. To subscribe, sign up on the blog with another address.")
    if subscriber.status == Status.CONFIRMED.value:
        return ("You are subscribed", "This address already gets our emails: there is nothing to confirm.")
    if subscriber.status != Status.UNSUBSCRIBED.value:
        return ("Check your inbox", "This signup waits for you to click the link in our confirmation email. "
                                    "Nothing there? Look in the spam or promotions folder, or sign up again on the blog.")
    held = held_back(session, subscriber_id, "confirmation")
    if held:
        return HELD_TITLE, held_back_message(held, "a confirmation link")
    return (HELD_TITLE, "Many people are signing up right now, so we are holding confirmation emails back for a "
                        "while. Please try again in an hour.")
