"""Each message is three templates (subject, .txt, .html) rendered into one EmailMessage."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import css_inline
from flask import current_app, render_template
from markupsafe import escape

_inliner = css_inline.CSSInliner(keep_style_tags=False)


def refuse_line_breaks(value: str, field: str) -> str:
    """Header injection guard for anything that may reach a header."""
    if any(c in value for c in "\r\n\0\u2028\u2029\x85"):
        raise ValueError(f"{field} contains a line break")
    return value


def message_id(dedupe_key: str, created_at: datetime) -> str:
    """Stable for one owed mail (a resend after a crash is recognisably the same), new for every other."""
    domain = parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2] or "localhost"
    digest = hashlib.sha256(f"{dedupe_key}|{created_at.isoformat()}".encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


@dataclass(frozen=True)
class Parts:
    subject: str
    text: str
    html: str

    def fill(self, values: dict[str, str]) -> Parts:
        """Put per-recipient values into a frame rendered once with placeholders (see `placeholder`)."""
        text, html = self.text, self.html
        for name, value in values.items():
            text = text.replace(placeholder(name), value)
            html = html.replace(placeholder(name), str(escape(value)))
        return Parts(self.subject, text, html)


def placeholder(name: str) -> str:
    # Survives HTML escaping and CSS inlining untouched, and no template writes it by accident.
    return f"%%MAILER:{name}%%"


def render_parts(template: str, context: dict) -> Parts:
    """Render templates/email/<template>.{subject.txt,txt,html}; the HTML gets its CSS inlined."""
    subject = render_template(f"email/{template}.subject.txt", **context).strip()
    text = render_template(f"email/{template}.txt", **context)
    html = _inliner.inline(render_template(f"email/{template}.html", **context))
    return Parts(refuse_line_breaks(subject, "subject"), text, html)


def build(parts: Parts, to: str, *, msg_id: str, unsubscribe_url: str | None = None) -> EmailMessage:
    """A multipart/alternative message for one recipient; list mail gets the unsubscribe headers."""
    msg = EmailMessage()
    msg["Subject"] = parts.subject
    msg["From"] = current_app.config["MAIL_FROM"]
    msg["To"] = Address(addr_spec=refuse_line_breaks(to, "to"))
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = msg_id
    if unsubscribe_url:
        # RFC 2369 + RFC 8058: mailbox providers show their own one-click button from these.
        msg["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["List-Id"] = current_app.config["LIST_ID"]
    msg.set_content(parts.text)
    msg.add_alternative(parts.html, subtype="html")
    return msg
