"""The local outbox (no SMTP_URL): the mails as a recipient sees them, read with the development viewer's code."""
from __future__ import annotations

from flask import abort, current_app, render_template

from ..web import devmail
from . import bp

SHOWN = 200


def _local_outbox() -> None:
    if current_app.config["SMTP_URL"]:
        abort(404, "Mail goes out through SMTP_URL, so there is no local outbox to read.")


@bp.get("/outbox")
def outbox():
    _local_outbox()
    folder = devmail._outbox()
    files = sorted(folder.glob("*.eml"), reverse=True)[:SHOWN] if folder.exists() else []
    mails = [{"name": f.name, "msg": devmail._parse(f, headersonly=True)} for f in files]
    return render_template("admin/outbox.html", mails=mails)


@bp.get("/outbox/<name>")
def outbox_mail(name: str):
    _local_outbox()
    msg = devmail._read(name)
    text = msg.get_body(("plain",))
    return render_template("admin/mail.html", name=name, msg=msg, text=text.get_content() if text else "")


@bp.get("/outbox/<name>/html")
def outbox_html(name: str):
    _local_outbox()
    return devmail.html_part(name)
