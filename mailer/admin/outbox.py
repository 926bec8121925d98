"""The local outbox (no SMTP_URL): the mails as a recipient sees them, read with the development viewer's code."""
from __future__ import annotations

from flask import abort, current_app, render_template, request

from ..web import devmail
from . import bp

SHOWN = 200


def _local_outbox() -> None:
    if current_app.config["SMTP_URL"]:
        abort(404, "Mail goes out through SMTP_URL, so there is no local outbox to read.")


@bp.get("/outbox")
def outbox():
    """SHOWN mails a page, newest first; `before` (a file name) pages back to older mail."""
    _local_outbox()
    folder, before = devmail._outbox(), request.args.get("before", "")
    files = sorted(folder.glob("*.eml"), reverse=True) if folder.exists() else []
    if before:
        files = [f for f in files if f.name < before]
    mails = [{"name": f.name, "msg": devmail._parse(f, headersonly=True)} for f in files[:SHOWN]]
    return render_template("admin/outbox.html", mails=mails, first_page=not before,
                           next_before=files[SHOWN - 1].name if len(files) > SHOWN else None)


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
