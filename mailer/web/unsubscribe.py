"""/unsubscribe/<token>: the one-click unsubscribe (RFC 8058), the page that asks, fewer emails instead, and back."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from .. import tokens
from ..extensions import csrf, db, limiter
from ..links import preferences_url
from ..models import Status, Subscriber
from ..outbox import ledger
from ..people import preferences, subscriptions
from . import promises
from .public import BadLink, bad_link

bp = Blueprint("unsubscribe", __name__)
bp.register_error_handler(BadLink, bad_link)
FEWER = "monthly"  # "fewer emails instead": the monthly summary rather than every digest


def _subscriber_id(token: str) -> int:
    try:
        return tokens.read(tokens.UNSUBSCRIBE, token)["s"]
    except (tokens.InvalidToken, tokens.ExpiredToken, KeyError, TypeError):
        raise BadLink("This unsubscribe link is not valid. Copy the whole link from the email, "
                      "or reply to it and we will remove you by hand.") from None


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: mailbox providers post here with no cookie and no token
def unsubscribe(token: str):
    subscriber_id = _subscriber_id(token)
    if request.method == "GET":
        return _page(token, db.session.get(Subscriber, subscriber_id))
    subscriptions.unsubscribe(db.session, subscriber_id)
    db.session.commit()
    return render_template("site/message.html", title="You are unsubscribed",
                           message="You will get no more emails from us. Changed your mind? Sign up again on the blog.")


@bp.post("/unsubscribe/<token>/fewer")
def fewer(token: str):
    """Stay, with the monthly summary instead of every digest."""
    subscriber = preferences.reader(db.session, _subscriber_id(token))
    if subscriber is None:
        return _page(token, db.session.get(Subscriber, _subscriber_id(token))), 409
    preferences.set_frequency(subscriber, FEWER)
    db.session.commit()
    return _page(token, subscriber, message=f"Saved: you now get {preferences.FREQUENCIES[FEWER]} instead of "
                                            "every digest.")


@bp.post("/unsubscribe/<token>/again")
@limiter.limit(lambda: current_app.config["SIGNUP_RATE_LIMIT"])
def subscribe_again(token: str):
    subscriber_id = _subscriber_id(token)
    subscriptions.subscribe_again(db.session, subscriber_id, None, request.remote_addr, request.user_agent.string)
    db.session.commit()
    owed = ledger.owed(db.session)
    ledger.wake()
    title, message = promises.subscribe_again_answer(db.session, subscriber_id, owed)
    return render_template("site/message.html", title=title, message=message)


def _page(token: str, subscriber: Subscriber | None, message: str | None = None):
    """The question, or, once the reader has left, that state (with the way back) instead of asking again."""
    status = subscriber.status if subscriber is not None else None
    confirmed = status == Status.CONFIRMED.value
    return render_template("site/unsubscribe.html", token=token, subscriber=subscriber, message=message,
                           left=status not in (Status.CONFIRMED.value, Status.PENDING.value),
                           may_return=status == Status.UNSUBSCRIBED.value,
                           offer_fewer=confirmed and subscriber.digest_frequency == "every",
                           preferences=preferences_url(subscriber.id) if confirmed else None)
