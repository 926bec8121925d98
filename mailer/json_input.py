"""JSON that comes from outside: nested too deeply for the parser is malformed, like any other bad JSON.

Python's parser raises RecursionError, not ValueError, on a body like [[[[…]]]] 100,000 deep; every reader of
outside JSON here expects ValueError, and would answer 500 instead of 400.
"""
from __future__ import annotations

import json

from flask.json.provider import DefaultJSONProvider


def loads(text: str | bytes):
    """json.loads, with too deep a nesting raised as ValueError."""
    return _nesting_is_malformed(json.loads, text)


def _nesting_is_malformed(parse, text: str | bytes, **kwargs):
    try:
        return parse(text, **kwargs)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


class RequestJSON(DefaultJSONProvider):
    """The app's JSON provider: request.get_json() then treats too deep a nesting as malformed (None when silent,
    else 400)."""

    def loads(self, s: str | bytes, **kwargs):
        return _nesting_is_malformed(super().loads, s, **kwargs)
