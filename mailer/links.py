"""Absolute links put in mail and pages; BASE_URL is the public address, whatever served the request."""
from __future__ import annotations

from flask import current_app

from . import tokens


def _absolute(path: str) -> str:
    return current_app.config["BASE_URL"] + path


def confirm_url(consent_id: int) -> str:
    return _absolute(f"/confirm/{tokens.make(tokens.CONFIRM, {'c': consent_id})}")


def download_url(subscriber_id: int, magnet_id: int) -> str:
    return _absolute(f"/download/{tokens.make(tokens.DOWNLOAD, {'s': subscriber_id, 'm': magnet_id})}")


def unsubscribe_url(subscriber_id: int) -> str:
    return _absolute(f"/unsubscribe/{tokens.make(tokens.UNSUBSCRIBE, {'s': subscriber_id})}")


def preferences_url(subscriber_id: int) -> str:
    return _absolute(f"/preferences/{tokens.make(tokens.PREFERENCES, {'s': subscriber_id})}")


def keep_url(subscriber_id: int) -> str:
    return _absolute(f"/keep/{tokens.make(tokens.KEEP, {'s': subscriber_id})}")


def click_url(delivery_id: int, subscriber_id: int, digest_id: int, post_id: int, post_url: str) -> str:
    # Everything the click records, and where it goes, is in the signed token: the redirect looks nothing up.
    return _absolute(f"/c/{tokens.make(tokens.CLICK, [delivery_id, subscriber_id, digest_id, post_id, post_url])}")


HIDDEN_LINK = 0  # the "post" of a digest's hidden link, which no person sees: only machines follow it


def hidden_link_url(delivery_id: int, subscriber_id: int, digest_id: int, target: str) -> str:
    """A click link like the posts' own, to `target`, for an anchor no person sees (posts/scanners)."""
    return click_url(delivery_id, subscriber_id, digest_id, HIDDEN_LINK, target)


def open_url(delivery_id: int, subscriber_id: int, digest_id: int) -> str:
    return _absolute(f"/o/{tokens.make(tokens.OPEN, [delivery_id, subscriber_id, digest_id])}.gif")
