"""The console's forms: Flask-WTF, so every one of them carries and checks a CSRF token."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import DataRequired, Email, InputRequired, Length, NumberRange, Optional, ValidationError

from ..api_tokens import SCOPES

from ..mail.messages import has_control_character


class ActionForm(FlaskForm):
    """A button that changes something: nothing but the CSRF token."""


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    new = PasswordField("New password", validators=[DataRequired(), Length(min=12, max=1024)])
    repeat = PasswordField("New password again", validators=[DataRequired()])


class PostForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=500)])
    url = URLField("Address of the post", validators=[DataRequired(), Length(max=2000)])
    summary = TextAreaField("Summary (Markdown)", validators=[Optional(), Length(max=20000)])
    # A date picker in the browser; posts.store checks the value the server gets, whatever sent it.
    published_at = StringField("Published (UTC)", validators=[Optional()], render_kw={"type": "datetime-local"})


class DigestForm(FlaskForm):
    subject = StringField("Subject", validators=[Optional(), Length(max=200)])
    intro = TextAreaField("Introduction", validators=[Optional(), Length(max=5000)])


class TestSendForm(DigestForm):
    to = EmailField("Send a test to", validators=[DataRequired(), Email(check_deliverability=False)])


def one_line(form, field) -> None:
    """The text goes into a mail's subject: no line break or control character, typed or in an encoded word."""
    if field.data and has_control_character(field.data):
        raise ValidationError("The title goes into the mail's subject: one line, without control characters.")


class MagnetForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=200), one_line])
    description = TextAreaField("Description", validators=[Optional(), Length(max=5000)])
    file = FileField("New file (PDF, EPUB, ZIP…)")


class NewMagnetForm(MagnetForm):
    slug = StringField("Short name used in the form (letters, digits, dashes)",
                       validators=[DataRequired(), Length(max=80)])
    file = FileField("File", validators=[FileRequired()])


class StepForm(FlaskForm):
    # Hours for a sequence's first step (0: with the confirmation), days for the others: the view says which.
    delay = IntegerField("Days after confirmation", validators=[InputRequired(), NumberRange(min=0, max=24 * 365)])
    subject = StringField("Subject", validators=[Optional(), Length(max=200)])
    body = TextAreaField("Body (Markdown)", validators=[Optional(), Length(max=20000)])
    enabled = BooleanField("Send this step")


class StepTestForm(FlaskForm):
    to = EmailField("Send a test copy to", validators=[DataRequired(), Email(check_deliverability=False)])


class ImportForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired()])
    confirmed = BooleanField("They already agreed elsewhere: add them as confirmed and send nothing")


def plain_name(form, field) -> None:
    """A label shown in lists and logs: one line, no control character (nor a NUL, which PostgreSQL refuses)."""
    if field.data and has_control_character(field.data):
        raise ValidationError("Use one line without control characters.")


class TokenForm(FlaskForm):
    name = StringField("Name (who or what uses it, like 'crm' or 'postfix')",
                       validators=[DataRequired(), Length(max=100), plain_name])
    # Drawn as one checkbox per scope by templates/admin/tokens.html, each with what it allows.
    scopes = SelectMultipleField("What it may do", choices=list(SCOPES),
                                 validators=[DataRequired("Tick at least one scope.")])
