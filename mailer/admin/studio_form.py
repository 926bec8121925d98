"""The settings form: what the author may type for the newsletter's name, sender, reply-to, blog, logo and colour,
each checked where it goes (a header, a URL, a stylesheet) before anything is stored."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from ..addresses import InvalidSignup, normalise_email
from ..mail import headers
from ..mail.messages import has_control_character

LOGO_MAX_BYTES = 200 * 1024
# The image types every mail client shows, told by their first bytes, not by the file's name. No SVG: it may script.
LOGO_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
              (b"GIF89a", "image/gif"))


def one_header_line(form, field) -> None:
    """A value that goes into a mail header (From's name, List-Id's name, a subject): one line, no control."""
    if field.data and has_control_character(field.data):
        raise ValidationError("This goes into mail headers: use one line without line breaks or control characters.")
    if field.data:
        try:
            headers.phrase("From", field.data)
        except ValueError as exc:
            raise ValidationError(f"This cannot be written in a mail header ({exc}).") from None


def reply_address(form, field) -> None:
    if not field.data or not field.data.strip():
        return
    try:
        field.data = normalise_email(field.data)
        headers.mailbox("Reply-To", field.data)
    except (InvalidSignup, ValueError) as exc:
        raise ValidationError(f"{exc} Type one address, like replies@example.com, or leave it empty.") from None


def web_address(https_only: bool):
    def check(form, field) -> None:
        value = (field.data or "").strip()
        if not value:
            return
        parts = urlsplit(value)
        schemes = ("https",) if https_only else ("http", "https")
        if parts.scheme not in schemes or not parts.netloc or not value.isascii() or re.search(r'[\s<>"\']', value):
            raise ValidationError(f"Type a full address starting with {' or '.join(s + '://' for s in schemes)}, "
                                  "like https://blog.example.com/ (no spaces or quotes).")
        field.data = value
    return check


def colour(form, field) -> None:
    if field.data and not re.fullmatch(r"#[0-9a-fA-F]{6}", field.data.strip()):
        raise ValidationError("Type a colour as # and six hexadecimal digits, like #1f4e79.")
    field.data = (field.data or "").strip().lower()


def postal(form, field) -> None:
    if any(ord(c) < 32 and c not in "\r\n" or c == "\x7f" for c in field.data or ""):
        raise ValidationError("Use plain lines of text: no tabs or control characters.")


def logo_kind(data: bytes) -> str:
    """The logo's content type from its first bytes, or a ValueError that says what to upload instead."""
    if len(data) > LOGO_MAX_BYTES:
        raise ValueError(f"The logo is {len(data) // 1024} KB; upload one of at most {LOGO_MAX_BYTES // 1024} KB "
                         "(a PNG of about 400 pixels across is plenty for a mail).")
    for magic, kind in LOGO_TYPES:
        if data.startswith(magic):
            return kind
    raise ValueError("The logo must be a PNG, JPEG or GIF image; convert it and upload it again.")


class SettingsForm(FlaskForm):
    newsletter_name = StringField("Newsletter name", validators=[DataRequired(), Length(max=100), one_header_line])
    sender_name = StringField("Sender's display name", validators=[DataRequired(), Length(max=100), one_header_line])
    reply_to = StringField("Reply-to address (empty: replies go to the sender)",
                           validators=[Optional(), Length(max=254), reply_address])
    blog_url = StringField("The blog's address", validators=[Optional(), Length(max=500), web_address(False)])
    logo_url = StringField("Logo at an address (https)", validators=[Optional(), Length(max=500), web_address(True)])
    logo_file = FileField("Or upload a logo (PNG, JPEG or GIF, 200 KB at most)")
    remove_logo = BooleanField("Remove the uploaded logo")
    accent_colour = StringField("Accent colour", validators=[DataRequired(), Length(max=7), colour])
    postal_address = TextAreaField("Postal address for the mail footer", validators=[Optional(), Length(max=500), postal])
    welcome_text = TextAreaField("Welcome mail text ({newsletter} stands for the name)",
                                 validators=[DataRequired(), Length(max=5000)])
    archive_enabled = BooleanField("Publish the archive of sent digests (/archive)")
