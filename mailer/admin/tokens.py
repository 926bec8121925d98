"""API tokens: the list with scopes and last use, a new token (shown once), revoking one."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for

from ..api_tokens import SCOPES, create_token, list_tokens, revoke_token
from ..extensions import db
from ..models import ApiToken
from . import bp
from .forms import ActionForm, TokenForm


@bp.get("/tokens")
def tokens():
    return _page(TokenForm(formdata=None))


@bp.post("/tokens")
def token_new():
    form = TokenForm()
    if not form.validate_on_submit():
        return _page(form), 400
    name = form.name.data.strip()
    token = create_token(db.session, name, form.scopes.data)
    db.session.commit()
    # Shown in this answer only, never flashed: the flash would keep it in the session cookie.
    return _page(TokenForm(formdata=None), created={"name": name, "token": token, "scopes": form.scopes.data}), 201


@bp.post("/tokens/<int:token_id>/revoke")
def token_revoke(token_id: int):
    token = db.session.get(ApiToken, token_id) if token_id < 2**63 else None
    ActionForm().validate_on_submit() or abort(400)
    if token is None:
        abort(404)
    if revoke_token(token):
        db.session.commit()
        flash(f"Revoked “{token.name}”: requests with it now get 401.", "ok")
    else:
        flash(f"“{token.name}” was already revoked.", "ok")
    return redirect(url_for("admin.tokens"))


def _page(form: TokenForm, created: dict | None = None):
    return render_template("admin/tokens.html", tokens=list_tokens(db.session), form=form, created=created,
                           scopes=SCOPES, action=ActionForm())
