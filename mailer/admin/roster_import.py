"""Importing a CSV from the browser: upload, then a page that shows a worker importing it a chunk at a time (or
imports it itself, with no worker about) and shows the report."""
from __future__ import annotations

from flask import abort, jsonify, redirect, render_template, request, url_for

from ..extensions import db
from ..outbox import ledger
from ..people.importing import ImportFileError
from . import bp, imports
from .forms import ActionForm, ImportForm


@bp.route("/subscribers/import", methods=["GET", "POST"])
def import_upload():
    form = ImportForm()
    if form.validate_on_submit():
        upload = form.file.data
        try:
            token = imports.start(db.session, upload.stream, upload.filename or "upload.csv", form.confirmed.data)
        except ImportFileError as exc:
            db.session.rollback()
            form.file.errors.append(str(exc))
        else:
            db.session.commit()
            imports.hand_to_worker(token)
            return redirect(url_for("admin.import_progress", token=token))
    return render_template("admin/import.html", form=form), 400 if form.errors else 200


@bp.get("/subscribers/import/<token>")
def import_progress(token: str):
    state = imports.load(db.session, token) or abort(404)
    return render_template("admin/import_progress.html", state=state, token=token, form=ActionForm())


@bp.post("/subscribers/import/<token>/step")
def import_step(token: str):
    """Import the next chunk, or say a worker is at it (busy); the page's script calls this until `done` (without
    script, a button does)."""
    state = imports.step(db.session, token) or abort(404)
    if state["mails_owed"]:
        ledger.wake()
    if request.accept_mimetypes.best == "application/json":
        return jsonify(_public(state))
    return redirect(url_for("admin.import_progress", token=token))


def _public(state: dict) -> dict:
    percent = 100 if state["done"] else min(99, round(100 * state["offset"] / max(state["size"], 1)))
    return {**{k: v for k, v in state.items() if k != "bad_lines"}, "percent": percent,
            "bad_lines": state["bad_lines"][:200]}
