"""The subscriber list as CSV, in keyset batches: the CLI's export and the console's download share it."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Subscriber
from .roster import FIELDS, public_record

BATCH = 1000
# A cell starting with one of these is a formula to a spreadsheet: "=HYPERLINK(...)" as a name typed into the
# signup form would run when the admin opens the export (CSV injection). Such cells get a leading apostrophe,
# which spreadsheets show as text and which the import takes off again (importing.from_text_cell).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def runs_as_formula(value: str) -> bool:
    # Apostrophes already there count too ("'=1" is written "''=1"), so the import gives back exactly the value.
    return value.lstrip("'").startswith(FORMULA_START)


def as_text_cell(value: str) -> str:
    return "'" + value if runs_as_formula(value) else value


def export_csv(session: Session, status: str | None = None, batch: int = BATCH) -> Iterator[str]:
    """The header line, then one chunk of CSV text per batch; only one batch is ever in memory."""
    columns = [getattr(Subscriber, name) for name in ("id", *FIELDS)]
    yield ",".join(FIELDS) + "\n"
    after = 0
    while True:
        # Keyset batches: each is one short query.
        query = select(*columns).where(Subscriber.id > after).order_by(Subscriber.id).limit(batch)
        if status:
            query = query.where(Subscriber.status == status)
        rows = session.execute(query).all()
        session.rollback()  # no read transaction held open while the output is written
        if not rows:
            return
        chunk = io.StringIO()
        writer = csv.writer(chunk, lineterminator="\n")
        for row in rows:
            record = public_record(row)
            writer.writerow([as_text_cell(record[name] or "") for name in FIELDS])
        yield chunk.getvalue()
        after = rows[-1].id
