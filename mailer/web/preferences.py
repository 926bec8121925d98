"""/preferences/<token>: how often a reader hears from us, their name, a fresh handbook link, leaving; no account, no script."""
from __future__ import annotations

from flask import Blueprint, render_template, request

from .. import tokens
from ..extensions import db
from ..links import download_url
from ..outbox import ledger
from ..people import preferences, subscriptions, sunset
from . import promises
from .public import BadLink, bad_link

bp = Blueprint("preferences", __name__)
bp.register_error_handler(BadLink, bad_link)

DONE = {"frequency": "Saved: {choice}.", "pause": "Paused: no digests until {until}.",
        "resume": "Welcome back: digests come again.",
        "come-back": "Welcome back: digests come again, starting with the next one.",
        "name": "Saved: we will greet you as {name}.",
        "name-cleared": "Saved: our emails will greet you without a name.",
        "download": "Here is a fresh download link; a copy is on its way by email too.",
        "download-not-mailed": "Here is a fresh download link; no new email this time. {held}"}


def _subscriber_id(token: str) -> int:
    try:
        return int(tokens.read(tokens.PREFERENCES, token)["s"])
    except (tokens.InvalidToken, tokens.ExpiredToken, KeyError, TypeError, ValueError):
        raise BadLink("This preferences link is not valid. Copy the whole link from one of our emails.") from None


@bp.get("/preferences/<token>")
def page(token: str):
    subscriber = preferences.reader(db.session, _subscriber_id(token))
    return _render(token, subscriber)


@bp.post("/preferences/<token>")
def change(token: str):
    subscriber_id = _subscriber_id(token)
    action, link, held = request.form.get("action", ""), None, None
    if action == "unsubscribe" and request.form.get("confirm") != "yes":
        return _render(token, preferences.reader(db.session, subscriber_id),
                       error="Tick \"Yes, stop every email\" to unsubscribe; nothing was changed."), 422
    if action == "unsubscribe":
        subscriptions.unsubscribe(db.session, subscriber_id)
        db.session.commit()
        return render_template("site/message.html", title="You are unsubscribed",
                               message="You will get no more emails from us. Changed your mind? Sign up again on the blog.")
    subscriber = preferences.reader(db.session, subscriber_id)
    if subscriber is None:
        return _render(token, None), 409
    try:
        if action == "frequency":
            preferences.set_frequency(subscriber, request.form.get("frequency", ""))
        elif action == "pause":
            preferences.pause(subscriber)
        elif action == "resume":
            preferences.resume(subscriber)
        elif action == "name":
            preferences.rename(subscriber, request.form.get("name", ""))
        elif action == "come-back":
            sunset.keep(db.session, subscriber, form=sunset.CONSENT_FORM, ip=request.remote_addr,
                        user_agent=request.user_agent.string)
        elif action == "download":
            magnet_id, mailed = preferences.fresh_download(db.session, subscriber)
            link = download_url(subscriber.id, magnet_id)
            action = "download" if mailed else "download-not-mailed"
            held = None if mailed else subscriptions.held_back(db.session, subscriber.id, "magnet")
        else:
            raise preferences.InvalidChoice("Choose one of the buttons on this page.")
    except preferences.InvalidChoice as exc:
        db.session.rollback()
        return _render(token, db.session.get(type(subscriber), subscriber_id), error=str(exc)), 422
    db.session.commit()
    if action == "download":
        ledger.wake()
    if action == "name" and not subscriber.name:
        action = "name-cleared"
    message = DONE[action].format(choice=preferences.FREQUENCIES[subscriber.digest_frequency],
                                  until=subscriber.paused_until.strftime("%-d %B %Y") if subscriber.paused_until else "",
                                  name=subscriber.name,
                                  held=promises.held_back_message(held, "a download link") if held else "")
    return _render(token, subscriber, message=message, download_link=link)


def _render(token: str, subscriber, message: str | None = None, error: str | None = None,
            download_link: str | None = None) -> str:
    paused = subscriber is not None and subscriber.paused
    return render_template("site/preferences.html", token=token, subscriber=subscriber, paused=paused,
                           frequencies=preferences.FREQUENCIES, message=message, error=error,
                           download_link=download_link,
                           stopped=subscriber is not None and sunset.stopped_reason(subscriber))
