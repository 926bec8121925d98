"""Each message is three templates (subject, .txt, .html) rendered into one EmailMessage."""
from __future__ import annotations

import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import css_inline
from flask import current_app, render_template

_inliner = css_inline.CSSInliner(keep_style_tags=False)


def refuse_line_breaks(value: str, field: str) -> str:
    """Header injection guard for anything that may reach a header."""
    if any(c in value for c in "\r\n\0\u2028\u2029\x85"):
        raise ValueError(f"{field} contains a line break")
    return value


def message_id(dedupe_key: str) -> str:
    """A stable Message-ID per owed mail: a resend after a crash is recognisably the same mail."""
    domain = parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"
    digest = hashlib.sha256(f"{current_app.config['SECRET_KEY']}:{dedupe_key}".encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def render(template: str, to: str, context: dict, *, dedupe_key: str, unsubscribe_url: str | None = None) -> EmailMessage:
    """Render templates/email/<template>.{subject,txt,html} for one recipient."""
    subject = render_template(f"email/{template}.subject.txt", **context).strip()
    text = render_template(f"email/{template}.txt", unsubscribe_url=unsubscribe_url, **context)
    html = _inliner.inline(render_template(f"email/{template}.html", unsubscribe_url=unsubscribe_url, **context))

    msg = EmailMessage()
    msg["Subject"] = refuse_line_breaks(subject, "subject")
    msg["From"] = current_app.config["MAIL_FROM"]
    msg["To"] = Address(addr_spec=refuse_line_breaks(to, "to"))
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id(dedupe_key)
    if unsubscribe_url:
        # RFC 2369 + RFC 8058: mailbox providers show their own one-click button from these.
        msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["List-Id"] = current_app.config["LIST_ID"]
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg
