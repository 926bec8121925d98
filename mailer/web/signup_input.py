"""Reading a signup from a form post or a JSON body, refusing shapes we do not accept."""
from __future__ import annotations

from flask import Request

FIELDS = ("email", "name", "magnet", "source", "next", "form", "website", "form_token")
FORMS = ("snippet", "iframe", "script", "api")
# Captcha response tokens run to a few thousand characters (Turnstile's up to 2048), more than other fields.
CAPTCHA_FIELDS = ("captcha", "cf-turnstile-response", "h-captcha-response")
CAPTCHA_MAX = 16_000


class BadRequestBody(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def read_signup(request: Request) -> dict[str, str | None]:
    # The body's size is limited for every endpoint before a view runs (body_limits: 64 KB here).
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise BadRequestBody("body", 'The body must be a JSON object like {"email": "you@example.com"}.')
        default_form = "api"
    else:
        data = request.form
        default_form = "snippet"
    fields: dict[str, str | None] = {}
    for name in FIELDS + CAPTCHA_FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRequestBody(name, f"The field {name!r} must be a string.")
        if value is not None and len(value) > (CAPTCHA_MAX if name in CAPTCHA_FIELDS else 2000):
            raise BadRequestBody(name, f"The field {name!r} is too long.")
        if value is not None and any(c in value for c in "\0\r\n"):
            raise BadRequestBody(name, f"The field {name!r} contains a line break or a NUL character.")
        fields[name] = value
    if fields["email"] is None:
        raise BadRequestBody("email", "The field 'email' is missing.")
    fields["form"] = fields["form"] if fields["form"] in FORMS else default_form
    fields["captcha"] = next((fields[n] for n in CAPTCHA_FIELDS if fields[n]), None)
    # What the browser said its zone is (embed.js, the iframe's script): a hint, never a reason to refuse the
    # signup; sign_up keeps it only if it is a zone name zoneinfo knows.
    zone = data.get("time_zone")
    fields["time_zone"] = zone if isinstance(zone, str) and len(zone) <= 64 else None
    return fields
