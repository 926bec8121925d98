"""Response headers: who may frame our pages, and the browser protections every page gets."""
from __future__ import annotations

from flask import Flask, current_app, request
from flask_cors import CORS

from .origins import trusted_origins

FRAMEABLE = {"public.embed", "public.subscribe"}


def register(app: Flask) -> None:
    # Only the blogs we serve may call /subscribe from their pages' scripts.
    CORS(app, resources={r"/subscribe": {"origins": app.config["EMBED_ORIGINS"] or []}},
         methods=["POST"], allow_headers=["Content-Type"], max_age=3600)
    # Flask's defaults already hold these keys (True, None, False): setdefault would never apply.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if app.config["BASE_URL"].startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.after_request(_headers)


def _headers(response):
    if request.endpoint in FRAMEABLE:
        ancestors = " ".join(["'self'", *sorted(trusted_origins())])
    else:
        ancestors = "'none'"
    response.headers.setdefault("Content-Security-Policy", f"frame-ancestors {ancestors}")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if current_app.config["BASE_URL"].startswith("https://"):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
