"""Which sites may embed the form and where a visitor may be sent back to: no open redirects."""
from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from flask import current_app

from ..mail import identity


def _split(url: str) -> SplitResult | None:
    """urlsplit, or None for what it refuses (ValueError): "http://[", a host with a full-width @ (U+FF20) in it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is no number)
    except ValueError:
        return None
    return parts


def origin_of(url: str | None) -> str | None:
    parts = _split(url) if url else None
    if parts is None:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def signup_source(url: str | None) -> str | None:
    """Where a signup came from (its `source` field or the Referer), as the consent records it: a URL that can be
    read as one, else nothing (a source that cannot be split could never be shown as a link or checked later)."""
    if not url or any(ord(c) < 32 or ord(c) == 127 for c in url) or _split(url) is None:
        return None
    return url


def trusted_origins() -> set[str]:
    config = current_app.config
    return {o for o in [origin_of(config["BASE_URL"]), origin_of(identity.current().blog_url), *config["EMBED_ORIGINS"]] if o}


def safe_return_url(url: str | None) -> str | None:
    """`url` if it leads to one of our configured origins, else None."""
    if url and not any(c in url for c in "\r\n\\") and origin_of(url) in trusted_origins():
        return url
    return None


def blog_page(url: str | None) -> str | None:
    """`url` if it is a page of the blog (a trusted origin other than our own), else None: a "back to the blog"
    link must not lead to this app's own form or its /subscribe."""
    safe = safe_return_url(url)
    return safe if safe and origin_of(safe) != origin_of(current_app.config["BASE_URL"]) else None


def back_to_blog(*candidates: str | None) -> str | None:
    """The first candidate that is a page of the blog, else the blog's address from the settings (None without one)."""
    pages = (page for page in map(blog_page, candidates) if page)
    return next(pages, None) or blog_page(identity.current().blog_url)
