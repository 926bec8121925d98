"""Composing a digest: choose the posts, preview it as a subscriber sees it, send a test, then send after confirming."""
from __future__ import annotations

from datetime import timedelta

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..addresses import InvalidSignup
from ..extensions import db
from ..models import utcnow
from ..outbox import digest_mail, ledger
from ..posts import digest_results as results
from ..posts import digest_schedule, digests, engagement, local_time, segments
from ..posts.audiences import RuleError
from ..posts.segments import Recipients
from ..web.ids import row_id, row_ids
from . import bp, follow_ups, mail_html
from .forms import ActionForm, DigestForm, TestSendForm
from .segments import chosen_recipients, recipients_choices

SENT_TWICE_WITHIN = timedelta(minutes=10)  # a second "send" of the same posts this soon is the same click again


def _choice() -> tuple[list[int], str, str]:
    """The posts, subject and intro being composed, from the query string or the posted form."""
    values = request.values
    return row_ids(values.getlist("post_ids")), values.get("subject", ""), values.get("intro", "")


def _to() -> tuple[str, Recipients, str]:
    """Whom it goes to (the compose page's choice: `readers`), and the audience that follows from it."""
    to = chosen_recipients(request.values.get("readers"))
    return request.values.get("readers", ""), to, segments.audience_for(to, None)


def _parts(post_ids: list[int], subject: str, intro: str):
    _, to, audience = _to()
    posts = digests.choose_posts(db.session, post_ids, audience, to.rules)
    return posts, digest_mail.preview(digests.subject_for(subject, posts), intro.strip(), posts,
                                      unsubscribe_url="#unsubscribe-link")


@bp.get("/digests")
def digests_page():
    before = request.args.get("before", type=row_id)
    history = results.latest(db.session, 21, before)
    shown = results.results(db.session, history[:20])
    engaged = engagement.digest_totals(db.session, [r.id for r in shown])
    db.session.commit()
    newest_first = digests.unsent_posts(db.session, back_catalogue=True)[::-1]
    return render_template("admin/digests.html", posts=newest_first, action_form=ActionForm(),
                           form=DigestForm(formdata=None), history=shown, engaged=engaged,
                           recipients_choices=recipients_choices(),
                           next_before=history[19].id if len(history) > 20 else None)


@bp.get("/digests/preview")
def digest_preview():
    post_ids, subject, intro = _choice()
    try:
        posts, parts = _parts(post_ids, subject, intro)
        to_value, to, audience = _to()
    except (digests.NothingNew, digests.DigestError, RuleError) as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.digests_page"))
    recipients = db.session.scalar(digests.confirmed_count(audience, to.rules))
    test_form = TestSendForm(formdata=None, to=current_user.admin.email)
    return render_template("admin/digest_preview.html", posts=posts, parts=parts, subject=subject, intro=intro,
                           post_ids=post_ids, recipients=recipients, test_form=test_form, to=to_value,
                           to_label=to.label,
                           confirm=request.args.get("confirm") == "1", form=ActionForm(), now=utcnow(),
                           test=follow_ups.carried(), author_zone=current_app.config["AUTHOR_TIME_ZONE"])


@bp.get("/digests/preview.html")
def digest_preview_html():
    """The HTML part alone, for the preview's sandboxed iframe."""
    try:
        _, parts = _parts(*_choice())
    except (digests.NothingNew, digests.DigestError, RuleError) as exc:
        return Response(str(exc), 409, mimetype="text/plain")
    return mail_html(parts.html)


@bp.post("/digests/test")
def digest_test():
    post_ids, subject, intro = _choice()
    form = TestSendForm()
    if not form.validate():
        flash(f"Cannot send the test: {'; '.join(e for errs in form.errors.values() for e in errs)}", "error")
    else:
        try:
            digests.send_test(db.session, form.to.data, subject, intro, post_ids)
        except (digests.NothingNew, digests.DigestError, InvalidSignup) as exc:
            db.session.rollback()
            flash(f"Cannot send the test: {exc}", "error")
        else:
            db.session.commit()
            ledger.wake()
            flash(f"A test copy is on its way to {form.to.data}.", "ok")
    return redirect(url_for("admin.digest_preview", post_ids=post_ids, subject=subject, intro=intro,
                            readers=request.values.get("readers") or None))


@bp.post("/digests")
def digest_send():
    """Send now, or (with send_at, a datetime-local value the page labels UTC) keep it for beat to start then."""
    post_ids, subject, intro = _choice()
    send_at, at = request.form.get("send_at"), (request.form.get("local_time") or "").strip()
    try:
        to_value, to, audience = _to()
    except RuleError as exc:
        flash(f"Nothing was sent: {exc}", "error")
        return redirect(url_for("admin.digests_page"))
    try:
        subject, test = follow_ups.subject_test(subject, post_ids)
        at = local_time.read_local_time(at) if at else None  # empty: every mail at once
        if send_at is None:
            digest = digests.create_digest(db.session, subject, intro, post_ids, audience, to, local_time=at, **test)
        else:
            digest = digest_schedule.schedule_digest(
                db.session, digest_schedule.read_send_at(send_at, naive_is_utc=True), subject, intro, post_ids,
                audience, to=to, local_time=at, **test)
    except (digests.NothingNew, digests.DigestError) as exc:
        db.session.rollback()
        if getattr(exc, "field", None) in ("send_at", "local_time", "subjects", "test_share", "decide_after_hours"):
            flash(f"Nothing was {'scheduled' if send_at else 'sent'}: {exc}", "error")
            return redirect(url_for("admin.digest_preview", post_ids=post_ids, subject=subject, intro=intro,
                                    readers=to_value or None, **follow_ups.carried()))
        earlier = digests.digest_carrying(db.session, post_ids, utcnow() - SENT_TWICE_WITHIN, audience, to.rules)
        if earlier is not None:
            flash("This digest is already on its way (the form was sent twice): here is how it is going.", "ok")
            return redirect(url_for("admin.digest", digest_id=earlier.id))
        flash(f"Nothing was sent: {exc}", "error")
        return redirect(url_for("admin.digests_page"))
    db.session.commit()
    if send_at is None:
        ledger.wake()
    return redirect(url_for("admin.digest", digest_id=digest.id))
