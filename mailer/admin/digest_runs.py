"""A digest on its way: the live progress page and its JSON, pause, resume and cancel."""
from __future__ import annotations

from flask import abort, flash, jsonify, redirect, render_template, url_for

from ..extensions import db
from ..models import Digest, utcnow
from ..outbox import ledger
from ..posts import digest_results as results
from ..posts import digests, engagement, local_time, reputation
from . import bp, charts, follow_ups
from .forms import ActionForm


def _result(digest_id: int) -> tuple[Digest, results.Result]:
    digest = db.session.get(Digest, digest_id) or abort(404)
    [result] = results.results(db.session, [digest])
    db.session.commit()
    return digest, result


@bp.get("/digests/<int:digest_id>")
def digest(digest_id: int):
    digest, result = _result(digest_id)
    clicks = engagement.digest_clicks(db.session, digest)
    chart = charts.split_bars([p.human_clicks for p in clicks.posts], [p.machine_clicks for p in clicks.posts],
                              [p.title for p in clicks.posts])
    rates = reputation.digest_rates(db.session, [digest.id])[digest.id]
    waiting = local_time.waiting_for(db.session, digest, utcnow())
    return render_template("admin/digest.html", digest=digest, result=result, form=ActionForm(), clicks=clicks,
                           click_chart=chart, rates=rates, waiting=waiting, waiting_chart=_by_hour(waiting),
                           **follow_ups.shown(digest))


def _by_hour(waiting) -> charts.Chart | None:
    """The mails waiting for their readers' local time, a bar per hour (UTC) they fall due, a date every 6 hours."""
    if not waiting or not waiting.total:
        return None
    hours = waiting.every_hour()
    return charts.bar_chart([count for _, count in hours], [f"{hour:%-d %b %H:00}" for hour, _ in hours],
                            marks_every=6)


@bp.get("/digests/<int:digest_id>/progress")
def digest_progress(digest_id: int):
    """Polled every second by the progress page's script."""
    return jsonify(_result(digest_id)[1].as_json())


DONE = {"pause": "Paused: mails not yet handed to a worker wait until you resume.",
        "resume": "Resumed: sending carries on where it stopped.",
        "cancel": "Cancelled: the mails not yet sent will not be sent.",
        "unschedule": "Schedule cancelled: nothing was or will be sent; its posts go back to the next digest.",
        "start": "Started: the digest is on its way."}


@bp.post("/digests/<int:digest_id>/<any(pause, resume, cancel, start):action>")
def digest_steer(digest_id: int, action: str):
    digest = db.session.get(Digest, digest_id) or abort(404)
    try:
        if action == "start" and not digests.start_digest(db.session, digest):
            raise digests.DigestError(f"digest {digest.id} is {digest.status}: only a scheduled digest can be started")
        called_off = action == "cancel" and digests.cancel(db.session, digest)
        if action in ("pause", "resume"):
            getattr(digests, action)(db.session, digest)
    except digests.DigestError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        db.session.commit()
        if action in ("resume", "start"):
            ledger.wake()
        flash(DONE["unschedule" if called_off else action], "ok")
    return redirect(url_for("admin.digest", digest_id=digest_id))
