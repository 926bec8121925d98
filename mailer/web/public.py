"""The pages a visitor sees: subscribe, confirm, download, unsubscribe, the embeds, health."""
from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from .. import tokens
from ..addresses import InvalidSignup
from ..extensions import csrf, db, limiter
from ..links import download_url
from ..magnets import HANDBOOK_SLUG, button_text, find_magnet
from ..models import Consent, Delivery, Download, LeadMagnet, Subscriber
from ..ops import metrics
from ..outbox import ledger
from ..people import networks, subscriptions
from ..people.subscriptions import SignupRequest
from . import captcha, form_guard, promises, thanks
from .magnet_files import FileMissing, magnet_file
from .origins import back_to_blog, safe_return_url, signup_source
from .signup_input import BadRequestBody, read_signup

log = logging.getLogger(__name__)
bp = Blueprint("public", __name__)
bp.app_context_processor(form_guard.template_helpers)
bp.after_app_request(form_guard.no_store_when_issued)
bp.add_app_template_global(button_text)
THANKS = "Thanks! Check your inbox and click the link in our email to confirm."


@bp.post("/subscribe")
@csrf.exempt  # posted from the blog, another origin; the abuse guards stand in for CSRF
@limiter.limit(lambda: current_app.config["SIGNUP_RATE_LIMIT"], key_func=networks.request_client)
def subscribe():
    """Store a signup and owe its confirmation; a bot (form_guard.bot_reason) gets the same answer, and nothing happens."""
    wants_json = request.is_json
    try:
        fields = read_signup(request)
        reason = form_guard.bot_reason(fields)
        if reason:
            form_guard.log_bot(reason, request.remote_addr)
            return _thanks(fields, wants_json, bot=True)
        captcha.verify(fields["captcha"], request.remote_addr)
        subscriptions.sign_up(db.session, SignupRequest(
            email=fields["email"], name=fields["name"], magnet=fields["magnet"],
            source_url=signup_source(fields["source"] or request.referrer), form=fields["form"],
            ip=request.remote_addr, user_agent=request.user_agent.string, time_zone=fields["time_zone"],
        ))
    except (InvalidSignup, BadRequestBody, captcha.CaptchaRefused, form_guard.StaleForm) as exc:
        db.session.rollback()
        status = 422 if isinstance(exc, InvalidSignup) else 400
        field = getattr(exc, "field", "captcha")
        if wants_json:
            return jsonify(error=str(exc), field=field), status
        template = "site/embed.html" if request.form.get("form") == "iframe" else "site/signup_error.html"
        values = request.form.to_dict()
        values["next"] = safe_return_url(values.get("next")) or ""  # kept for the corrected form, if it is ours to use
        if isinstance(exc, form_guard.StaleForm):
            values.pop(form_guard.TOKEN_FIELD, None)  # the page answers with a fresh token
        return render_template(template, error=str(exc), field=field, values=values,
                               magnet=_magnet_or_handbook(request.form.get("magnet")),
                               back=back_to_blog(request.referrer)), status
    metrics.signups().inc()
    _log_owed("signup stored", db.session)
    ledger.wake()
    return _thanks(fields, wants_json)


def _magnet_or_handbook(slug: str | None) -> LeadMagnet | None:
    """The magnet a form asked for, for its wording; the handbook when there is no such magnet."""
    try:
        return find_magnet(db.session, slug)
    except InvalidSignup:
        return db.session.scalar(select(LeadMagnet).where(LeadMagnet.slug == HANDBOOK_SLUG))


def _log_owed(event: str, session) -> list[int]:
    """Log the outbox rows this request owed, and return their ids."""
    # With the request id (logs.ContextFilter) this line links a request to the outbox rows the worker logs.
    ids = ledger.owed(session)
    log.info("%s; owed deliveries %s", event, ", ".join(map(str, ids)) or "none", extra={"delivery_ids": ids})
    return ids


def _thanks(fields: dict, wants_json: bool, bot: bool = False):
    if wants_json:
        return jsonify(status="ok", message=THANKS), 202
    if fields["form"] == "iframe":
        return render_template("site/embed_thanks.html", message=THANKS)
    back = safe_return_url(fields["next"])
    if back:
        return redirect(back, code=303)
    return thanks.page(fields["email"], fields["magnet"], fields["source"] or request.referrer, taken_for_bot=bot)


@bp.get("/subscribe")
def subscribe_page():
    """The address of the form's answer, opened again from the history or a bookmark: the form itself."""
    return redirect(url_for("public.index"), code=303)


@bp.get("/confirm/<token>")
def confirm_page(token: str):
    consent = _consent_for(token)
    subscriber = db.session.get(Subscriber, consent.subscriber_id)
    if subscriptions.consent_withdrawn(subscriber, consent):
        return _withdrawn(token, subscriber, 200)
    return render_template("site/confirm.html", token=token, magnet=consent.magnet)


@bp.post("/confirm/<token>")
def confirm(token: str):
    try:
        consent = subscriptions.confirm_subscription(db.session, _consent_for(token).id)
    except subscriptions.ConsentWithdrawn as exc:
        db.session.rollback()
        return _withdrawn(token, exc.subscriber, 409)
    db.session.commit()
    metrics.confirmations().inc()
    owed = _log_owed(f"consent {consent.id} confirmed", db.session)
    ledger.wake()
    link = download_url(consent.subscriber_id, consent.magnet_id) if consent.magnet_id else None
    # The page tells of the mails this confirmation owed, no more: confirming again owes none.
    mailed = set(db.session.scalars(select(Delivery.kind).where(Delivery.id.in_(owed)))) if owed else set()
    return render_template("site/confirmed.html", magnet=consent.magnet, download_url=link, mailed=mailed,
                           back=back_to_blog(consent.source_url))


@bp.post("/confirm/<token>/again")
@limiter.limit(lambda: current_app.config["SIGNUP_RATE_LIMIT"], key_func=networks.request_client)
def subscribe_again(token: str):
    """An old link after an unsubscribe: sign up again, with a new consent once the new mail is confirmed."""
    consent = _consent_for(token)
    subscriptions.subscribe_again(db.session, consent.subscriber_id, consent, request.remote_addr,
                                  request.user_agent.string)
    db.session.commit()
    owed = _log_owed("signup stored from an old confirmation link", db.session)
    ledger.wake()
    title, message = promises.subscribe_again_answer(db.session, consent.subscriber_id, owed)
    return render_template("site/message.html", title=title, message=message)


def _withdrawn(token: str, subscriber: Subscriber, status: int):
    return render_template("site/confirm_withdrawn.html", token=token, state=subscriber.status,
                           unsubscribed_at=subscriber.unsubscribed_at), status


@bp.get("/download/<token>")
def download(token: str):
    try:
        ids = tokens.read(tokens.DOWNLOAD, token, max_age=current_app.config["DOWNLOAD_LINK_MAX_AGE"])
    except tokens.ExpiredToken:
        return render_template("site/download_expired.html", token=token), 410
    except tokens.InvalidToken:
        raise BadLink("This download link is not valid. Copy the whole link from the email, or sign up again.") from None
    subscriber, magnet = db.session.get(Subscriber, ids["s"]), db.session.get(LeadMagnet, ids["m"])
    if subscriber is None or magnet is None or subscriber.status not in ("confirmed", "unsubscribed"):
        raise BadLink("This download is no longer available for this address. Sign up again to get a fresh link.", 404)
    try:
        response = magnet_file(magnet)
    except FileMissing:
        return render_template("site/message.html", title="This file is not available right now",
                               message="We could not find this file just now. Try the link again later."), 503
    db.session.add(Download(subscriber_id=subscriber.id, magnet_id=magnet.id))
    db.session.commit()
    return response


@bp.post("/download/<token>/renew")
def renew_download(token: str):
    try:
        tokens.read(tokens.DOWNLOAD, token, max_age=current_app.config["DOWNLOAD_LINK_MAX_AGE"])
        ids = None  # still valid: nothing to renew, the link works
    except tokens.ExpiredToken as exc:
        ids = exc.payload
    except tokens.InvalidToken:
        raise BadLink("This download link is not valid. Copy the whole link from the email.") from None
    if ids is None:
        return render_template("site/message.html", title="This link still works",
                               message="Your download link has not expired: open it again from the email.")
    if subscriptions.mail_fresh_download_link(db.session, ids["s"], ids["m"]):
        db.session.commit()
        ledger.wake()
        return render_template("site/message.html", title="A fresh link is on its way",
                               message="A new download link arrives in a few minutes. Nothing there? Look in the "
                                       "spam or promotions folder.")
    held = subscriptions.held_back(db.session, ids["s"], "magnet")
    if held:
        return render_template("site/message.html", title=promises.HELD_TITLE,
                               message=promises.held_back_message(held, "a download link"))
    return render_template("site/message.html", title="No new link for this address",
                           message="This address is not subscribed any more, so we send it nothing. To get the "
                                   "handbook again, sign up on the blog.")


@bp.get("/embed")
def embed():
    try:
        magnet = find_magnet(db.session, request.args.get("magnet"))
    except InvalidSignup as exc:
        return render_template("site/message.html", title="No such form", message=str(exc)), 404
    # The page that framed the form: the blog post the consent record names (as far as the blog's referrer
    # policy tells; its origin at least), not this form's own address.
    # At most what a form field may hold (signup_input): a long address is cut, not a reason to refuse the signup.
    source = signup_source((request.args.get("source") or request.referrer or "")[:2000]) or ""
    values = {**request.args.to_dict(), "source": source}
    return render_template("site/embed.html", values=values, error=None, field=None, magnet=magnet)


@bp.get("/embed/token")
def embed_token():
    """A fresh form token for embed.js, whose cached script cannot carry one (CORS: EMBED_ORIGINS)."""
    return jsonify(token=form_guard.issue_token()), 200, {"Cache-Control": "no-store"}


@bp.get("/embed.js")
def embed_js():
    body = render_template("site/embed.js", base_url=current_app.config["BASE_URL"])
    return Response(body, mimetype="text/javascript", headers={"Cache-Control": "public, max-age=300"})


@bp.get("/healthz")
def healthz():
    from ..ops.health import check

    state = check()
    return jsonify(state), 200 if all(v == "ok" for v in state.values()) else 503


@bp.get("/")
def index():
    return render_template("site/index.html")


class BadLink(Exception):
    """A link from an email that cannot be used; the message tells the visitor what to do instead."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@bp.errorhandler(BadLink)
def bad_link(exc: BadLink):
    return render_template("site/message.html", title="This link does not work", message=str(exc)), exc.status


def _consent_for(token: str) -> Consent:
    try:
        consent_id = tokens.read(tokens.CONFIRM, token, max_age=current_app.config["CONFIRM_LINK_MAX_AGE"])["c"]
    except tokens.ExpiredToken:
        raise BadLink("This confirmation link has expired. Sign up again and we will send a fresh one.", 410) from None
    except (tokens.InvalidToken, KeyError, TypeError):
        raise BadLink("This confirmation link is not valid. Copy the whole link from the email, or sign up again.") from None
    consent = db.session.get(Consent, consent_id)
    if consent is None:
        raise BadLink("This signup no longer exists. Sign up again on the blog.", 404)
    return consent
