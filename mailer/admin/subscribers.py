"""Subscribers: search and keyset pages, one person's record, unsubscribe, CSV export."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from flask import (
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from ..bounces import suppressions
from ..extensions import db
from ..models import Status, Subscriber
from ..people import privacy, sunset
from ..people.exporting import export_csv
from ..people.subscriptions import unsubscribe as unsubscribe_subscriber
from ..posts import engagement
from ..web.ids import row_id
from . import bp, search
from .forms import ActionForm

STATUSES = [s.value for s in Status]


def _status_arg() -> str | None:
    status = request.args.get("status") or None
    return status if status in STATUSES else None


@bp.get("/subscribers")
def subscribers():
    before = request.args.get("before", type=row_id)
    query = request.args.get("q", "")[:254]
    page = search.search(db.session, query, _status_arg(), before)
    return render_template("admin/subscribers.html", page=page, q=query, status=_status_arg(), statuses=STATUSES,
                           first_page=before is None)


@bp.get("/subscribers/<int:subscriber_id>")
def subscriber(subscriber_id: int):
    person = db.session.get(Subscriber, subscriber_id) or abort(404)
    return render_template("admin/subscriber.html", person=person, history=search.history(db.session, person.id),
                           stopped_reason=sunset.stopped_reason(person),
                           clicks=engagement.subscriber_events(db.session, person.id), form=ActionForm(),
                           lifts=suppressions.lifts(db.session, person.id))


@bp.post("/subscribers/<int:subscriber_id>/unsubscribe")
def unsubscribe(subscriber_id: int):
    ActionForm().validate_on_submit() or abort(400)
    person = unsubscribe_subscriber(db.session, subscriber_id) or abort(404)
    db.session.commit()
    flash(f"{person.email} is unsubscribed: no further list mail goes to them, including mail already queued.", "ok")
    return redirect(url_for("admin.subscriber", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/erase")
def erase(subscriber_id: int):
    person = db.session.get(Subscriber, subscriber_id) or abort(404)
    email = person.email
    privacy.erase_subscriber(db.session, person)
    db.session.commit()
    flash(f"{email} is erased with all their records; only a hash of the address is kept, "
          "so an import will not add it back.", "ok")
    return redirect(url_for("admin.subscribers"))


@bp.get("/subscribers/<int:subscriber_id>/data.json")
def person_data(subscriber_id: int):
    """Everything stored about one person, for a data access request."""
    person = db.session.get(Subscriber, subscriber_id) or abort(404)
    return Response(json.dumps(privacy.export_subscriber(db.session, person), indent=2), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="subscriber-{person.id}.json"'})


@bp.get("/subscribers/export.csv")
def export():
    status = _status_arg()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    name = f"subscribers-{status or 'all'}-{stamp}.csv"
    return Response(stream_with_context(export_csv(db.session, status)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
