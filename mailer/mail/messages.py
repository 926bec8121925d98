"""Each message is three templates (subject, .txt, .html) rendered into one message for one recipient.

Transactional mails get their body from an EmailMessage. List mail (a digest to every reader) is assembled as bytes
from a `ListMailFrame` made once per digest: only the recipient's values, the part bodies and a few headers vary.
Either way every header field is written by `headers`, never by the email package.
"""
from __future__ import annotations

import binascii
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from functools import lru_cache

import css_inline
from flask import current_app, render_template
from markupsafe import escape

from . import headers, identity

_inliner = css_inline.CSSInliner(keep_style_tags=False)


LINE_BREAKS = "\r\n\0\x85\u2028\u2029"  # NUL, and Unicode's NEL, LS and PS: a mail header ends at any of them


def has_line_break(value: str) -> bool:
    """A line break as typed, or inside an RFC 2047 encoded word (=?utf-8?q?=0D=0A?=), where a reader finds it."""
    return any(c in LINE_BREAKS for c in value) or any(c in LINE_BREAKS for c in headers.decoded(value))


# Text-direction embeddings, overrides and isolates: in a name they reverse what follows it in a greeting.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def has_control_character(value: str) -> bool:
    """A line break, a tab, any other C0 or C1 control character, or a text-direction control: what a one-line
    name must not hold, as typed or inside an encoded word. (Joiners, which some scripts and emoji need, are
    allowed.)"""
    return any(_is_control(c) for c in value) or any(_is_control(c) for c in headers.decoded(value))


def _is_control(c: str) -> bool:
    return ord(c) < 32 or 0x7f <= ord(c) <= 0x9f or c in BIDI_CONTROLS or c in LINE_BREAKS


def without_control_characters(value: str) -> str:
    """`value` with every character has_control_character() refuses taken out (for post titles, which may come
    from a feed)."""
    return "".join(c for c in value if not _is_control(c))


def refuse_line_breaks(value: str, field: str) -> str:
    """Header injection guard for anything that may reach a header."""
    if has_line_break(value):
        raise ValueError(f"{field} contains a line break")
    return value


@lru_cache(maxsize=16)
def domain_of(address: str) -> str:
    """The domain of an address such as 'Name <user@Domain>', as written ('' when it has none)."""
    return parseaddr(address)[1].rpartition("@")[2]


def message_id(dedupe_key: str, created_at: datetime) -> str:
    """Stable for one owed mail (a resend after a crash is recognisably the same), new for every other."""
    domain = domain_of(current_app.config["MAIL_FROM"]) or "localhost"
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


def paragraphs(text: str | None) -> list[str]:
    """The paragraphs of text a person typed: split at blank lines, each stripped, empty ones left out.
    A Jinja filter too (`intro | paragraphs`)."""
    return [p.strip() for p in (text or "").replace("\r\n", "\n").split("\n\n") if p.strip()]


def render_parts(template: str, context: dict) -> Parts:
    """Render templates/email/<template>.{subject.txt,txt,html}; the HTML gets its CSS inlined."""
    subject = render_template(f"email/{template}.subject.txt", **context).strip()
    text = render_template(f"email/{template}.txt", **context)
    html = _inliner.inline(render_template(f"email/{template}.html", **context))
    return Parts(refuse_line_breaks(subject, "subject"), text, html)


def build(parts: Parts, to: str, *, msg_id: str, unsubscribe_url: str | None = None,
          unsubscribe_mailto: str | None = None) -> Outgoing:
    """A multipart/alternative message for one recipient; list mail gets the unsubscribe headers.

    The email package makes the body; the header fields are written by `headers`, as the digest frame writes them.
    """
    body = EmailMessage()
    body.set_content(parts.text)
    body.add_alternative(parts.html, subtype="html")
    studio = identity.current()
    # The address as it is, not Address(addr_spec=…): that refuses the non-ASCII local parts SMTPUTF8 allows.
    international = not refuse_line_breaks(to, "to").isascii()
    head = [headers.text("Subject", parts.subject), *sender_fields(studio.mail_from, studio.reply_to),
            headers.field("To", [to]), headers.field("Date", formatdate(localtime=False).split()),
            headers.message_id(msg_id)]
    if unsubscribe_url:
        # RFC 2369 + RFC 8058: mailbox providers show their own one-click button from these.
        head += [headers.list_unsubscribe(unsubscribe_url, unsubscribe_mailto), LIST_UNSUBSCRIBE_POST,
                 headers.field("List-Id", headers.list_id(studio.list_id()))]
    data = b"".join(head) + body.as_bytes(policy=body.policy.clone(linesep="\r\n", utf8=international))
    return Outgoing(data, msg_id, international)


def sender_fields(mail_from: str, reply_to: str | None) -> list[bytes]:
    """From (the sender name with MAIL_FROM's address) and, when one is set, Reply-To."""
    fields = [headers.field("From", headers.mailbox("From", mail_from))]
    if reply_to:
        fields.append(headers.field("Reply-To", headers.mailbox("Reply-To", reply_to)))
    return fields


LIST_UNSUBSCRIBE_POST = b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"


@dataclass(frozen=True)
class Outgoing:
    """A message as it goes on the wire: CRLF lines, unsigned (the transport signs)."""
    data: bytes
    message_id: str
    international: bool = False  # a non-ASCII address: needs SMTPUTF8

    def parsed(self) -> EmailMessage:
        """The message read back, as a mail client would see it."""
        return message_from_bytes(self.data, policy=policy.default)


def wire(msg: EmailMessage | Outgoing) -> Outgoing:
    """Flatten an EmailMessage with CRLF line ends (UTF-8 headers when an address needs SMTPUTF8)."""
    if isinstance(msg, Outgoing):
        return msg
    international = not str(msg.get("To", "")).isascii()
    data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n", utf8=international))
    return Outgoing(data, str(msg["Message-ID"]), international)


# An address the frame can put into the To header as it is: ASCII, no quoting, no comments.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\Z")


class ListMailFrame:
    """A list mail rendered once: the fixed headers encoded, the parts with placeholders for each recipient.

    `fill` makes one recipient's message in tens of microseconds (string replacement and quoted-printable
    encoding in C), where building an EmailMessage costs milliseconds. Recipients whose address the frame cannot
    write as it is get None, and the caller builds their message the general way.
    """

    def __init__(self, parts: Parts, mail_from: str, list_id: str, reply_to: str | None = None):
        self.parts = parts
        # Encoded once, line ends made CRLF: a recipient's values hold no line break (else fill() takes the
        # general way for that one), so only they are encoded per mail.
        self._text, self._html = QuotedFrame(_crlf(parts.text)), QuotedFrame(_crlf(parts.html))
        # Encoded and folded once for the whole digest, as build() writes them.
        self.fixed = b"".join((headers.text("Subject", parts.subject), *sender_fields(mail_from, reply_to),
                               headers.field("List-Id", headers.list_id(list_id))))
        # QP output never holds "==", so this boundary cannot occur in a body.
        self.boundary = b"===============" + str(secrets.randbits(63)).encode() + b"=="

    def fill(self, values: dict[str, str], to: str, *, msg_id: str, unsubscribe_url: str,
             unsubscribe_mailto: str | None = None) -> Outgoing | None:
        if not _PLAIN_ADDRESS.match(to):
            return None
        if any("\r" in value or "\n" in value for value in values.values()):
            filled = self.parts.fill(values)
            text, html = _quoted(_crlf(filled.text)), _quoted(_crlf(filled.html))
        else:
            text = self._text.fill(values)
            html = self._html.fill({name: str(escape(value)) for name, value in values.items()})
        b = self.boundary
        data = b"".join((
            self.fixed,
            b"To: ", to.encode(), b"\r\n",
            b"Date: ", formatdate(localtime=False).encode(), b"\r\n",
            headers.message_id(msg_id),
            headers.list_unsubscribe(unsubscribe_url, unsubscribe_mailto),
            LIST_UNSUBSCRIBE_POST,
            b"MIME-Version: 1.0\r\n",
            b'Content-Type: multipart/alternative; boundary="', b, b'"\r\n\r\n',
            b"--", b, b"\r\n", _part(b"plain", text),
            b"--", b, b"\r\n", _part(b"html", html),
            b"--", b, b"--\r\n",
        ))
        return Outgoing(data, msg_id)


_LINE_END = re.compile(r"\r\n|\r|\n")


def _crlf(text: str) -> str:
    text = _LINE_END.sub("\r\n", text)  # a lone CR (in a feed's summary, say) would pass b2a_qp unencoded
    return text if text.endswith("\r\n") else text + "\r\n"


class QuotedFrame:
    """A part's text encoded quoted-printable once, with a placeholder's value set off by soft line breaks
    ("=" at a line's end, which readers drop), so each recipient's values are encoded on their own."""

    def __init__(self, text: str):
        pieces = _PLACEHOLDER.split(text)  # text, name, text, name, …, text
        self.texts = [_quoted_open(piece) for piece in pieces[0::2]]
        self.names = pieces[1::2]

    def fill(self, values: dict[str, str]) -> bytes:
        out = [self.texts[0]]
        for name, after in zip(self.names, self.texts[1:]):
            value = values.get(name)
            out += (b"=\r\n", _quoted_open(placeholder(name) if value is None else value), b"=\r\n", after)
        return b"".join(out)


def _quoted_open(text: str) -> bytes:
    """Quoted-printable whose last line leaves room for a soft line break: lines stay within 76 characters."""
    encoded = _quoted(text)
    start = encoded.rfind(b"\n") + 1
    if len(encoded) - start < 76:
        return encoded
    cut = start + 75
    while b"=" in encoded[cut - 2:cut]:  # never inside an =XX escape
        cut -= 1
    return encoded[:cut] + b"=\r\n" + encoded[cut:]


_PLACEHOLDER = re.compile(r"%%MAILER:(.+?)%%")  # as placeholder() writes them


def _quoted(text: str) -> bytes:
    """`text`, with CRLF line ends if any, as quoted-printable with CRLF line ends."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True)
    # b2a_qp breaks long lines with the line end it finds in the text, and with a bare LF in text that has none.
    return encoded if b"\r\n" in encoded or b"\n" not in encoded else encoded.replace(b"\n", b"\r\n")


def _part(subtype: bytes, encoded: bytes) -> bytes:
    """A text part, its body already quoted-printable with CRLF line ends."""
    return (b'Content-Type: text/' + subtype + b'; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + encoded + b"\r\n")  # the last CRLF is the boundary's
