"""What each kind of owed mail says: turns a Delivery row into a message for its recipient."""
from __future__ import annotations

from types import SimpleNamespace

from flask import current_app, render_template
from sqlalchemy import select

from .. import links
from ..bounces import mailto_unsubscribe
from ..extensions import db
from ..mail import identity, markdown_text
from ..mail.messages import Outgoing, Parts, build, message_id, render_parts, wire
from ..models import Consent, Delivery, LeadMagnet, Status, Subscriber, WelcomeStep
from .digest_mail import digest_frame, greeting, test_frame

LIST_MAIL = {"welcome", "digest", "sunset"}


def may_send(delivery: Delivery, subscriber: Subscriber | None) -> bool:
    """Only the confirmation goes to an unconfirmed address; nothing goes to a suppressed one.

    Read at send time, so a choice made after a digest was owed (no digests, a pause) still counts.
    """
    if delivery.kind == "test":
        return True  # to an address the admin typed, never to a subscriber's
    status = subscriber.status if subscriber else None
    if delivery.kind == "confirmation":
        # A complained reader's own new signup: their suppression skipped every confirmation queued before it.
        return status in (Status.PENDING.value, Status.UNSUBSCRIBED.value, Status.COMPLAINED.value)
    if delivery.kind == "digest" and subscriber is not None and not wants_digests(subscriber):
        return False
    return status == Status.CONFIRMED.value


def wants_digests(subscriber: Subscriber) -> bool:
    return subscriber.digest_frequency != "none" and not subscriber.paused and subscriber.sunset_at is None


def compose(delivery: Delivery, subscriber: Subscriber | None) -> Outgoing:
    """The message a row owes, ready for the wire."""
    msg_id = message_id(delivery.dedupe_key, delivery.created_at)
    if delivery.kind == "test":
        return wire(build(test_parts(delivery.payload), delivery.recipient, msg_id=msg_id))
    unsubscribe_url = links.unsubscribe_url(subscriber.id) if delivery.kind in LIST_MAIL else None
    mailto = mailto_unsubscribe.address(subscriber.id) if unsubscribe_url else None
    if delivery.kind == "digest":
        owed = delivery.payload or {}
        frame = digest_frame(delivery.digest_id, delivery.created_at, owed.get("variant"), owed.get("post_ids"))
        values = _digest_values(delivery, subscriber, frame.posts, unsubscribe_url)
        fast = frame.mail.fill(values, subscriber.email, msg_id=msg_id, unsubscribe_url=unsubscribe_url,
                               unsubscribe_mailto=mailto)
        if fast is not None:
            return fast
        parts = frame.mail.parts.fill(values)  # an address that needs quoting or SMTPUTF8: the general way
    else:
        parts = TRANSACTIONAL[delivery.kind](delivery, subscriber)
    return wire(build(parts, subscriber.email, msg_id=msg_id, unsubscribe_url=unsubscribe_url,
                      unsubscribe_mailto=mailto))


def _digest_values(delivery: Delivery, subscriber: Subscriber, posts: tuple[tuple[int, str], ...],
                   unsubscribe_url: str) -> dict:
    """This recipient's name and links, for the placeholders of the digest's frame."""
    config = current_app.config
    values = {"greeting": greeting(subscriber.name), "unsubscribe_url": unsubscribe_url,
              "preferences_url": links.preferences_url(subscriber.id)}
    if config.get("OPEN_TRACKING"):
        values["open_url"] = links.open_url(delivery.id, subscriber.id, delivery.digest_id)
    if config.get("CLICK_TRACKING", True):
        for post_id, url in posts:
            values[f"link:{post_id}"] = links.click_url(delivery.id, subscriber.id, delivery.digest_id, post_id, url)
        values["hidden_link"] = links.hidden_link_url(delivery.id, subscriber.id, delivery.digest_id,
                                                      identity.current().blog_url or config["BASE_URL"])
    return values


def _confirmation(delivery: Delivery, subscriber: Subscriber) -> Parts:
    consent = db.session.get(Consent, delivery.payload["consent_id"])
    # No name and nothing else the visitor typed: the address may not be theirs.
    return render_parts("confirmation", {"confirm_url": links.confirm_url(consent.id), "magnet": consent.magnet,
                            "imported": consent.form == "import"})


def _magnet(delivery: Delivery, subscriber: Subscriber) -> Parts:
    magnet = db.session.get(LeadMagnet, delivery.payload["magnet_id"])
    return render_parts("magnet", {"subscriber": subscriber, "magnet": magnet,
                                   "download_url": links.download_url(subscriber.id, magnet.id)})


def welcome_parts(step: WelcomeStep | None, subscriber, template: str = "") -> Parts:
    """A welcome step's mail as `subscriber` gets it, footer links and all: the send, the console's preview and its
    test copies all come from here. No step (deleted after it was owed): the built-in words of `template`."""
    subject, body = welcome_words(step, template)
    heading, body = markdown_text.leading_heading(body)
    return render_parts("welcome_step", {
        "subscriber": subscriber, "subject": subject, "heading": heading,
        "body_html": markdown_text.to_html(body), "body_text": markdown_text.to_text(body),
        "unsubscribe_url": links.unsubscribe_url(subscriber.id), "preferences_url": links.preferences_url(subscriber.id)})


def welcome_words(step: WelcomeStep | None, template: str = "") -> tuple[str, str]:
    """The subject and the Markdown body a step sends: the author's, else its built-in ones."""
    default_subject, default_body = built_in_words(step.template if step else template)
    if step is None:
        return default_subject, default_body
    return (step.subject or "").strip() or default_subject, (step.body or "").strip() or default_body


def built_in_words(template: str) -> tuple[str, str]:
    """The words shipped for a seeded step (templates/email/<template>.subject.txt and .md); none for the others."""
    if not template:
        return "", ""
    return (render_template(f"email/{template}.subject.txt").strip(),
            markdown_text.normalised(render_template(f"email/{template}.md")))


def _welcome(delivery: Delivery, subscriber: Subscriber):
    step_id, template = delivery.payload.get("step_id"), delivery.payload.get("template", "welcome")
    step = (db.session.get(WelcomeStep, step_id) if step_id is not None else
            db.session.scalar(select(WelcomeStep).where(WelcomeStep.template == template).limit(1)))
    return welcome_parts(step, subscriber, template)


def test_parts(payload: dict) -> Parts:
    """A test copy, to an address the admin typed: a welcome step as a sample reader gets it, or a digest."""
    if "step_id" not in payload:
        return test_frame(payload)
    step = db.session.get(WelcomeStep, payload["step_id"])
    parts = welcome_parts(step, SimpleNamespace(id=0, name=payload.get("name"), email=payload.get("email")),
                          payload.get("template", ""))
    return Parts(f"[Test] {parts.subject}", parts.text, parts.html)


def _sunset(delivery: Delivery, subscriber: Subscriber) -> Parts:
    """The sunset rule's question (people/sunset): its link opens a page whose button keeps them; no tracking."""
    return render_parts("sunset", {"subscriber": subscriber, "keep_url": links.keep_url(subscriber.id),
                                   "months": current_app.config.get("SUNSET_MONTHS"),
                                   "answer_days": current_app.config.get("SUNSET_ANSWER_DAYS", 14),
                                   "unsubscribe_url": links.unsubscribe_url(subscriber.id),
                                   "preferences_url": links.preferences_url(subscriber.id)})


TRANSACTIONAL = {"confirmation": _confirmation, "magnet": _magnet, "welcome": _welcome, "sunset": _sunset}
