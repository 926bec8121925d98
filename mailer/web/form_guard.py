"""Telling bots from people at POST /subscribe: a honeypot field and a token signed when the form was rendered."""
from __future__ import annotations

import logging
import time

from flask import current_app, g

from .. import tokens

log = logging.getLogger(__name__)
HONEYPOT = "website"  # hidden from people by CSS; form-filling bots fill every field they find
TOKEN_FIELD = "form_token"


class StaleForm(ValueError):
    """A genuine form token, but from a page left open longer than FORM_MAX_SECONDS: ask the person to resend."""

    field = "form"

    def __init__(self) -> None:
        super().__init__("This form was open for a long time, so we loaded a fresh one. Please submit it again.")


def issue_token() -> str:
    """A token for a form rendered now (the iframe, our pages, or embed.js via GET /embed/token)."""
    # Milliseconds in the payload: itsdangerous's own timestamp is whole seconds, too coarse for a 2 s floor.
    return tokens.make(tokens.FORM, {"at": round(time.time(), 3)})


def bot_reason(fields: dict[str, str | None]) -> str | None:
    """Why this submission looks automated, or None for a person.

    The plain HTML snippet is static HTML pasted into the blog, so it cannot carry a token: a submission
    with no token at all is judged by the honeypot alone (as are API-style JSON posts). A submission that
    does carry a token is a bot when the token does not verify, or came back less than FORM_MIN_SECONDS
    after it was issued. A genuine token older than FORM_MAX_SECONDS raises StaleForm: a person who left
    the page open gets a fresh form and a word of explanation, not a silent nothing.
    """
    if fields.get(HONEYPOT):
        return f"the hidden {HONEYPOT!r} field was filled"
    token = fields.get(TOKEN_FIELD)
    if not token:
        return None
    config = current_app.config
    try:
        issued = float(tokens.read(tokens.FORM, token, max_age=config["FORM_MAX_SECONDS"])["at"])
    except tokens.ExpiredToken:
        raise StaleForm() from None
    except (tokens.InvalidToken, KeyError, TypeError, ValueError):
        return "the form token does not verify"
    age = time.time() - issued
    if age < config["FORM_MIN_SECONDS"]:
        return f"the form came back {age:.1f} s after it was rendered (FORM_MIN_SECONDS is {config['FORM_MIN_SECONDS']})"
    if age > config["FORM_MAX_SECONDS"]:
        raise StaleForm()
    return None


def log_bot(reason: str, ip: str | None) -> None:
    log.info("signup from %s treated as a bot: %s; answered as usual, nothing stored or sent", ip, reason)


def template_helpers() -> dict:
    """`form_token()` and `captcha` for the signup form templates."""
    from .captcha import widget

    return {"form_token": _issue_for_page, "captcha": widget()}


def _issue_for_page() -> str:
    g.form_token_issued = True
    return issue_token()


def no_store_when_issued(response):
    # A cached page would hand out an old token, and a visitor would pass for a bot once it is past FORM_MAX_SECONDS.
    if g.get("form_token_issued"):
        response.headers["Cache-Control"] = "no-store"
    return response
