"""What a visitor typed, checked: the email address and the name, or an InvalidSignup naming the field."""
from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from .mail.messages import has_control_character, refuse_line_breaks


class InvalidSignup(ValueError):
    """Bad input from a visitor; `field` says which one."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def normalise_email(raw: str) -> str:
    if not raw or not raw.strip():
        raise InvalidSignup("email", "The email address is missing: enter one.")
    if len(raw) > 254:
        raise InvalidSignup("email", "That email address is too long (254 characters at most).")
    try:
        refuse_line_breaks(raw, "email")
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except (EmailNotValidError, ValueError) as exc:
        raise InvalidSignup("email", f"That email address is not valid: {exc}") from None


def clean_name(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    if len(raw) > 100:
        raise InvalidSignup("name", "The name is too long (100 characters at most).")
    if has_control_character(raw):
        raise InvalidSignup("name", "The name contains a line break or a control character; remove it.")
    return raw.strip()
