"""The scope each /api/v1 operation needs, in one table read by the token check and the OpenAPI description."""
from __future__ import annotations

import re

# Reading (GET) needs `read` unless this table says otherwise; every other method must be listed here, or no
# token may use it (a new endpoint is refused until it names its scope).
NEEDS = {
    ("POST", "/subscribers"): "write",
    ("DELETE", "/subscribers/{email}"): "write",
    ("POST", "/posts"): "write",
    ("POST", "/segments"): "write",
    ("POST", "/feed/fetch"): "send",
    ("POST", "/digests"): "send",
    ("POST", "/digests/{digest_id}/{action}"): "send",
    ("POST", "/digests/{digest_id}/resend"): "send",
}
PUBLIC = {("GET", "/openapi.json")}
READING = {"GET", "HEAD", "OPTIONS"}


def openapi_path(rule: str) -> str:
    """A Flask rule under /api/v1 as the OpenAPI document writes it: <int:digest_id> becomes {digest_id}."""
    return re.sub(r"<(?:[^>]*:)?(\w+)>", r"{\1}", rule.removeprefix("/api/v1"))


def scope_for(method: str, path: str) -> str | None:
    """The scope an operation needs (path as in the OpenAPI document); None for one that no scope allows."""
    method = "GET" if method in READING else method
    return NEEDS.get((method, path), "read" if method == "GET" else None)
