"""Response headers: who may frame our pages, and the browser protections every page gets."""
from __future__ import annotations

from flask import Flask, current_app, request
from flask_cors import CORS

from .captcha import provider
from .origins import origin_of, trusted_origins

FRAMEABLE = {"public.embed", "public.subscribe"}


def register(app: Flask) -> None:
    # Only the blogs we serve may call /subscribe from their pages' scripts.
    CORS(app, resources={r"/subscribe": {"origins": app.config["EMBED_ORIGINS"] or [], "methods": ["POST"]},
                         r"/embed/token": {"origins": app.config["EMBED_ORIGINS"] or [], "methods": ["GET"]}},
         allow_headers=["Content-Type"], max_age=3600)
    # Flask's defaults already hold these keys (True, None, False): setdefault would never apply.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if app.config["BASE_URL"].startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.after_request(_headers)


def content_security_policy() -> str:
    """No inline script or style anywhere; the captcha provider's origins only when one is configured."""
    trusted = sorted(trusted_origins())
    ancestors = " ".join(["'self'", *trusted]) if request.endpoint in FRAMEABLE else "'none'"
    widget = " ".join(provider().origins) if provider() else ""
    directives = [
        "default-src 'self'", f"script-src 'self' {widget}", f"style-src 'self' {widget}", " ".join(["img-src 'self' data:", *logo_origin()]),
        "object-src 'none'", "base-uri 'none'",
        # Our forms post to us, and a signup may then be redirected back to the blog (`next`).
        " ".join(["form-action 'self'", *trusted]),
        f"frame-ancestors {ancestors}",
    ]
    if widget:
        directives += [f"frame-src 'self' {widget}", f"connect-src 'self' {widget}"]
    return "; ".join(d.strip() for d in directives)


def logo_origin() -> list[str]:
    """A logo given as a URL elsewhere is shown on our pages too."""
    from ..mail import identity

    origin = origin_of(identity.current().logo_url)
    return [origin] if origin and origin.startswith("https://") else []


# What is no page of ours (a redirect, JSON, a file) loads nothing: its policy needs no settings from the database,
# so a click's redirect or an API answer makes no query for them.
NOT_A_PAGE_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def _headers(response):
    if response.mimetype != "text/html" or 300 <= response.status_code < 400:
        response.headers.setdefault("Content-Security-Policy", NOT_A_PAGE_POLICY)
    else:
        if response.status_code >= 500:
            from ..mail import identity

            identity.without_database()  # the database may be why it failed
        response.headers.setdefault("Content-Security-Policy", content_security_policy())
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if current_app.config["BASE_URL"].startswith("https://"):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
