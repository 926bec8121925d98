"""JSON that comes from outside: nested too deeply for the parser is malformed, like any other bad JSON, and so is
text that no UTF-8 can hold.

Python's parser raises RecursionError, not ValueError, on a body like [[[[…]]]] 100,000 deep; every reader of
outside JSON here expects ValueError, and would answer 500 instead of 400. It also accepts a lone surrogate
("\\ud800"), which cannot be encoded to be stored, logged or sent: such a string is refused, naming its field.
"""
from __future__ import annotations

import json

from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import BadRequest


class LoneSurrogate(BadRequest):
    """A string holds half of a UTF-16 pair; `field` names where (``name``, ``posts[0].title``)."""

    def __init__(self, field: str):
        self.field = field
        super().__init__(f"The field {field!r} contains a lone surrogate (half of a UTF-16 pair, such as \\ud800), "
                         "which is not text: send the characters themselves, encoded as UTF-8.")


def loads(text: str | bytes):
    """json.loads, with too deep a nesting or a lone surrogate raised as ValueError."""
    try:
        return _checked(_nesting_is_malformed(json.loads, text))
    except LoneSurrogate as exc:
        raise ValueError(exc.description) from None


def _nesting_is_malformed(parse, text: str | bytes, **kwargs):
    try:
        return parse(text, **kwargs)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def _checked(value):
    """`value`, unless one of its strings (or keys) holds a lone surrogate: LoneSurrogate names the first."""
    try:
        json.dumps(value, ensure_ascii=False).encode()  # in C: the usual body costs no walk
        return value
    except UnicodeEncodeError:
        pass
    stack = [("", value)]
    while stack:  # not recursive: the parser's own depth would be too deep for a recursive walk
        path, item = stack.pop()
        if isinstance(item, str) and not _encodes(item):
            raise LoneSurrogate(path or "body")
        children = []
        if isinstance(item, dict):
            for key, child in item.items():
                name = key if _encodes(key) else key.encode("utf-8", "backslashreplace").decode()
                if name != key:
                    raise LoneSurrogate(f"{path}.{name}" if path else name)
                children.append((f"{path}.{key}" if path else key, child))
        elif isinstance(item, list):
            children = [(f"{path}[{i}]", child) for i, child in enumerate(item)]
        stack.extend(reversed(children))  # the first field found is the first in the body
    return value


def _encodes(text: str) -> bool:
    try:
        text.encode()
        return True
    except UnicodeEncodeError:
        return False


class RequestJSON(DefaultJSONProvider):
    """The app's JSON provider: request.get_json() then treats too deep a nesting as malformed (None when silent,
    else 400), and a lone surrogate as a 400 naming the field (even when silent: the caller could not name it)."""

    def loads(self, s: str | bytes, **kwargs):
        return _checked(_nesting_is_malformed(super().loads, s, **kwargs))
