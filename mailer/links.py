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
