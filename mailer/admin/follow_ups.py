"""A digest's follow-ups in the console: the resend button, a subject test composed and its figures drawn."""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, request, url_for

from ..extensions import db
from ..models import Digest
from ..outbox import ledger
from ..posts import digests, resends, subject_tests
from . import bp, charts
from .forms import ActionForm

MORE_SUBJECTS = 3  # the compose page's fields for other subjects: 2 to 4 in all


@bp.post("/digests/<int:digest_id>/resend")
def digest_resend(digest_id: int):
    digest = db.session.get(Digest, digest_id) or abort(404)
    if not ActionForm().validate():
        flash("Nothing was resent: the form had expired. Try again.", "error")
        return redirect(url_for("admin.digest", digest_id=digest_id))
    form = request.form
    try:
        subject, hours, unless = resends.read_resend(form.get("subject"), _number(form.get("after_hours")),
                                                     form.get("unless") or None)
        resend = resends.schedule_resend(db.session, digest, subject, hours, unless)
        if not hours:
            digests.start_digest(db.session, resend)
    except digests.DigestError as exc:
        db.session.rollback()
        flash(f"Nothing was resent: {exc}", "error")
        return redirect(url_for("admin.digest", digest_id=digest_id))
    db.session.commit()
    if not hours:
        ledger.wake()
    flash(f"Resent to {resend.recipients} reader{'s' if resend.recipients != 1 else ''} who did not engage." if not hours
          else f"The resend goes in {hours:g} hours, to the readers who have not engaged by then.", "ok")
    return redirect(url_for("admin.digest", digest_id=resend.id))


def _number(value: str | None) -> float | str | None:
    """A number typed in a form field, or what was typed (refused, by name, by the domain's check)."""
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        return value


def carried() -> dict:
    """The subject test being composed, as the query string and the forms carry it from page to page."""
    values = request.values
    others = [s for s in values.getlist("other_subjects") if s.strip()]
    return {k: v for k, v in {"other_subjects": others, "test_percent": values.get("test_percent", ""),
                              "decide_after_hours": values.get("decide_after_hours", "")}.items() if v}


def subject_test(subject: str, post_ids: list[int]) -> tuple[str, dict]:
    """The digest's subject and its subject test's columns, from the compose form ({} without other subjects)."""
    test = carried()
    if not test.get("other_subjects"):
        return subject, {}
    first = digests.subject_for(subject, digests.choose_posts(db.session, post_ids))
    percent = _number(test.get("test_percent"))
    share = percent / 100 if isinstance(percent, float) else percent
    values = subject_tests.read_test([first, *test["other_subjects"]], share,
                                     _number(test.get("decide_after_hours")))
    return values["subjects"][0], values


def shown(digest: Digest) -> dict:
    """What the digest page shows of its follow-ups: the resend (or the digest it follows), the test's figures."""
    test = subject_tests.variants(db.session, digest)
    chart = charts.labelled_bars([v["human_clickers"] for v in test["variants"]],
                                 [v["subject"] for v in test["variants"]]) if test else []
    return {"resend": resends.resend_of(db.session, digest) if digest.follows_id is None else None,
            "original": db.session.get(Digest, digest.follows_id) if digest.follows_id else None,
            "subject_test": test, "variant_chart": chart, "open_tracking": bool(current_app.config.get("OPEN_TRACKING"))}
