"""Row ids in URLs and query strings: a number too large for the database names no row, it is not an error."""
from __future__ import annotations

from werkzeug.routing import IntegerConverter

LARGEST = 2**63 - 1  # a signed 64-bit integer: SQLite's INTEGER, PostgreSQL's bigint


class RowId(IntegerConverter):
    """`<int:…>` in every route: past LARGEST the URL matches nothing and answers 404, instead of the database
    driver failing on a number it cannot bind."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", LARGEST)
        super().__init__(map, *args, **kwargs)


def row_id(value: str) -> int:
    """For `request.args.get(name, type=row_id)`: outside 0..LARGEST is ValueError, so the argument counts as absent,
    as one that is not a number does."""
    number = int(value)
    if not 0 <= number <= LARGEST:
        raise ValueError(f"{value} is not a row id")
    return number


def row_ids(values: list[str]) -> list[int]:
    """The values that are row ids (`row_id`), in order; the others left out."""
    ids = []
    for value in values:
        try:
            ids.append(row_id(value))
        except ValueError:
            continue
    return ids
