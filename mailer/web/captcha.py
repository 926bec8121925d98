"""The optional captcha (CAPTCHA_PROVIDER=turnstile|hcaptcha): its widget, its CSP origins, and siteverify."""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import current_app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Provider:
    name: str
    script: str           # the widget's script, loaded by our forms and embed.js
    widget_class: str     # the element the script fills in (implicit rendering)
    field: str            # the form field the widget adds with its response token
    siteverify: str
    origins: tuple[str, ...]  # what the widget loads scripts, styles and frames from (for the CSP)


PROVIDERS = {
    "turnstile": Provider("turnstile", "https://challenges.cloudflare.com/turnstile/v0/api.js", "cf-turnstile",
                          "cf-turnstile-response", "https://challenges.cloudflare.com/turnstile/v0/siteverify",
                          ("https://challenges.cloudflare.com",)),
    "hcaptcha": Provider("hcaptcha", "https://js.hcaptcha.com/1/api.js", "h-captcha", "h-captcha-response",
                         "https://api.hcaptcha.com/siteverify", ("https://hcaptcha.com", "https://*.hcaptcha.com")),
}
# Where a response token may arrive: the widget's own field (form posts) or "captcha" (embed.js's JSON).
RESPONSE_FIELDS = ("captcha", *(p.field for p in PROVIDERS.values()))


class CaptchaRefused(Exception):
    """The captcha was missing, wrong, or could not be checked; the message tells the visitor what to do."""


def provider() -> Provider | None:
    return PROVIDERS.get(current_app.config.get("CAPTCHA_PROVIDER") or "")


def widget() -> dict | None:
    """What templates need to render the widget, or None when no captcha is configured."""
    chosen = provider()
    if chosen is None:
        return None
    return {"name": chosen.name, "script": chosen.script, "widget_class": chosen.widget_class,
            "site_key": current_app.config["CAPTCHA_SITE_KEY"]}


def post_siteverify(url: str, form: dict[str, str], timeout: float) -> dict:
    """POST to the provider's siteverify endpoint and return its JSON answer."""
    request = urllib.request.Request(url, data=urlencode(form).encode(), method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read(65536))


def verify(response_token: str | None, ip: str | None) -> None:
    """Pass when no captcha is configured or the provider accepts the token; else CaptchaRefused (fail closed)."""
    chosen = provider()
    if chosen is None:
        return
    if not response_token:
        raise CaptchaRefused("Please complete the captcha check, then send the form again.")
    config = current_app.config
    form = {"secret": config["CAPTCHA_SECRET"], "response": response_token}
    if chosen.name == "hcaptcha":
        form["sitekey"] = config["CAPTCHA_SITE_KEY"]  # hCaptcha checks the token was made for our site key
    if ip:
        form["remoteip"] = ip
    try:
        answer = post_siteverify(chosen.siteverify, form, timeout=config["CAPTCHA_TIMEOUT"])
    except (OSError, urllib.error.URLError, ValueError) as exc:
        # Failing open would let every bot through whenever the provider is slow: refuse and say so.
        log.error("captcha: %s siteverify could not be reached (%s); signups are refused until it answers",
                  chosen.name, exc)
        raise CaptchaRefused("We could not check the captcha just now. Nothing was saved; "
                             "please try again in a minute.") from None
    if not isinstance(answer, dict) or answer.get("success") is not True:
        codes = answer.get("error-codes") if isinstance(answer, dict) else answer
        log.info("captcha: %s refused a response token (%s)", chosen.name, codes)
        raise CaptchaRefused("The captcha check did not pass. Nothing was saved; please try it again.")
