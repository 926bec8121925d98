"""`mailer subscribers import|export`: moving the list in and out as CSV."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import click
from sqlalchemy import select

from . import outbox
from .extensions import db
from .importing import ImportFileError, ImportReport, import_subscribers
from .models import Status, Subscriber
from .roster import FIELDS, public_record

SHOW_BAD_LINES = 20
EXPORT_BATCH = 1000


@click.group("subscribers")
def subscribers() -> None:
    """Import subscribers from CSV, or export them."""


@subscribers.command("import")
@click.argument("path", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--confirmed", is_flag=True,
              help="They agreed elsewhere: add them as confirmed and send nothing. "
                   "Without it, each new or pending address is sent a confirmation email.")
def import_command(path: Path, confirmed: bool) -> None:
    """Add or update subscribers from FILE.csv (a header row with an 'email' column, optionally 'name')."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise click.ClickException(f"Cannot read {path}: {exc.strerror}. Check the path and its permissions.") from None
    size = path.stat().st_size
    # Decoded a line at a time, so a line that is not UTF-8 is named by its number (the BOM is the importer's).
    lines = (line.decode() for line in raw)
    with raw, click.progressbar(length=size, label=f"Importing {path.name}") as bar:
        try:
            report = import_subscribers(db.session, lines, confirmed, path.name,
                                        on_progress=lambda _rows: bar.update(raw.tell() - bar.pos))
        except ImportFileError as exc:
            db.session.rollback()
            raise click.ClickException(f"{path.name}: {exc}") from None
        bar.update(size - bar.pos)
    if report.mails_owed:
        outbox.wake()
    click.echo(summary(report, confirmed))
    for line, reason in report.bad_lines[:SHOW_BAD_LINES]:
        click.echo(f"line {line}: {reason}")
    if report.skipped > SHOW_BAD_LINES:
        click.echo(f"... and {report.skipped - SHOW_BAD_LINES} more bad lines. Fix them and import the file again: "
                   "the rows already imported are updated, not duplicated.")


def summary(report: ImportReport, confirmed: bool) -> str:
    """One line saying what the import did."""
    parts = [f"{report.created} added", f"{report.updated} already known"]
    if report.suppressed:
        parts.append(f"{report.suppressed} of them left unsubscribed or bounced")
    parts += [f"{report.duplicates} duplicates", f"{report.skipped} bad lines skipped"]
    mail = ("nothing sent (consent recorded as given elsewhere)" if confirmed
            else f"{report.mails_owed} confirmation emails queued")
    return f"Read {report.rows} rows: {', '.join(parts)}; {mail}."


@subscribers.command("export")
@click.option("--status", type=click.Choice([s.value for s in Status]), help="Only subscribers with this status.")
def export_command(status: str | None) -> None:
    """Write all subscribers (or those with --status) to standard output as CSV."""
    columns = [getattr(Subscriber, name) for name in ("id", *FIELDS)]
    click.echo(",".join(FIELDS))
    after = 0
    while True:
        # Keyset batches: each is one short query, and only one batch is ever in memory.
        query = select(*columns).where(Subscriber.id > after).order_by(Subscriber.id).limit(EXPORT_BATCH)
        if status:
            query = query.where(Subscriber.status == status)
        rows = db.session.execute(query).all()
        db.session.rollback()  # no read transaction held open while the output is written
        if not rows:
            break
        chunk = io.StringIO()
        writer = csv.writer(chunk, lineterminator="\n")
        for row in rows:
            record = public_record(row)
            writer.writerow([record[name] or "" for name in FIELDS])
        click.echo(chunk.getvalue(), nl=False)
        after = rows[-1].id
