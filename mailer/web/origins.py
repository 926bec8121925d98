"""Which sites may embed the form and where a visitor may be sent back to: no open redirects."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app


def origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def trusted_origins() -> set[str]:
    config = current_app.config
    return {o for o in [origin_of(config["BASE_URL"]), origin_of(config.get("BLOG_URL")), *config["EMBED_ORIGINS"]] if o}


def safe_return_url(url: str | None) -> str | None:
    """`url` if it leads to one of our configured origins, else None."""
    if url and not any(c in url for c in "\r\n\\") and origin_of(url) in trusted_origins():
        return url
    return None
