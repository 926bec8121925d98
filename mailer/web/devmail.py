"""The local outbox in the browser: with no SMTP_URL, mail lands in instance/outbox/ and is read here."""
from __future__ import annotations

from email import policy
from email.parser import BytesParser
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template, request

from ..ops.metrics import from_this_machine

bp = Blueprint("devmail", __name__, url_prefix="/dev/outbox")


@bp.before_request
def only_local_development():
    config = current_app.config
    # The outbox holds live confirmation links: never serve it in production or to another machine.
    # Loopback behind a proxy on this host is anyone: a forwarded request is not local (as for /metrics).
    if config["SMTP_URL"] or config["MAILER_ENV"] == "production" or not from_this_machine(request):
        abort(404)


def _parse(path: Path, headersonly: bool = False):
    with path.open("rb") as f:
        return BytesParser(policy=policy.default).parse(f, headersonly=headersonly)


def _outbox() -> Path:
    return Path(current_app.config["OUTBOX_DIR"])


def _read(name: str):
    path = _outbox() / name
    if path.suffix != ".eml" or path.parent != _outbox() or not path.is_file():
        abort(404)
    return _parse(path)


@bp.get("/")
def inbox():
    files = sorted(_outbox().glob("*.eml"), reverse=True)[:200] if _outbox().exists() else []
    mails = [{"name": f.name, "msg": _parse(f, headersonly=True)} for f in files]
    return render_template("dev/outbox.html", mails=mails)


@bp.get("/<name>")
def show(name: str):
    msg = _read(name)
    text = msg.get_body(("plain",))
    return render_template("dev/mail.html", name=name, msg=msg, text=text.get_content() if text else "")


@bp.get("/<name>/html")
def html_part(name: str):
    body = _read(name).get_body(("html",))
    if body is None:
        abort(404)
    # Shown in a sandboxed iframe; the CSP stops any script a template might carry.
    return Response(body.get_content(), mimetype="text/html",
                    headers={"Content-Security-Policy": "script-src 'none'; frame-ancestors 'self'"})
