"""The page after the signup form: where the link went (masked), the reader's webmail, and sending the link again."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from .. import tokens
from ..addresses import InvalidSignup
from ..extensions import csrf, db, limiter
from ..outbox import ledger
from ..people import subscriptions
from ..people.subscriptions import SignupRequest
from .mailboxes import mailbox_for, masked
from .origins import back_to_blog

bp = Blueprint("thanks", __name__)
SENT_AGAIN = "If this address can receive a new link, it is on its way."
RESEND_MAX_AGE = 24 * 3600  # a thanks page left open for a day is a signup to make again


def page(email: str, magnet: str | None, source: str | None, taken_for_bot: bool = False,
         notice: str | None = None) -> str:
    """The thanks page for the address just typed; its "send again" form carries the address signed, in the body."""
    email = email.strip()
    purpose = tokens.RESEND_NOTHING if taken_for_bot else tokens.RESEND
    token = tokens.make(purpose, {"e": email, "m": magnet, "u": (source or "")[:2000] or None})
    return render_template("site/thanks.html", address=masked(email),
                           mailbox=mailbox_for(email, current_app.config["MAIL_FROM"]), token=token, notice=notice,
                           back=back_to_blog(source, request.referrer))


@bp.post("/subscribe/again")
@csrf.exempt  # the page may be the answer to the blog's cross-origin form; the signed address stands in for CSRF
@limiter.limit(lambda: current_app.config["SIGNUP_RATE_LIMIT"])
def send_again():
    """Send the confirmation link again as a signup would: the same answer, and the same work, for every address."""
    signed, genuine = request.form.get("token", ""), True
    try:
        typed = tokens.read(tokens.RESEND, signed, max_age=RESEND_MAX_AGE)
    except tokens.InvalidToken:
        typed, genuine = _read_nothing(signed), False
    except tokens.ExpiredToken:
        typed = None
    if not isinstance(typed, dict) or not isinstance(typed.get("e"), str):
        return render_template("site/message.html", title="This page is too old",
                               message="We cannot send the link again from this page. Sign up again on the blog "
                                       "with your address."), 400
    if genuine:
        try:
            subscriptions.sign_up(db.session, SignupRequest(
                email=typed["e"], magnet=typed.get("m"), source_url=typed.get("u"), form="resend",
                ip=request.remote_addr, user_agent=request.user_agent.string))
        except InvalidSignup:
            db.session.rollback()  # a form of a magnet since removed: the answer stays the same
        ledger.wake()
    return page(typed["e"], typed.get("m"), typed.get("u"), taken_for_bot=not genuine, notice=SENT_AGAIN)


def _read_nothing(signed: str):
    try:
        return tokens.read(tokens.RESEND_NOTHING, signed, max_age=RESEND_MAX_AGE)
    except (tokens.InvalidToken, tokens.ExpiredToken):
        return None
