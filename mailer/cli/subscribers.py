"""`mailer subscribers import|export`: moving the list in and out as CSV."""
from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from ..extensions import db
from ..models import Status
from ..outbox import ledger
from ..people.exporting import export_csv
from ..people.importing import ImportFileError, ImportReport, ImportStopped, import_subscribers

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
@with_appcontext
def import_command(path: Path, confirmed: bool) -> None:
    """Add or update subscribers from FILE.csv (a header row with an 'email' column, optionally 'name')."""
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise click.ClickException(f"Cannot read {path}: {exc.strerror}. Check the path and its permissions.") from None
    size = path.stat().st_size
    # Decoded a line at a time, so a line that is not UTF-8 is named by its number (the BOM is the importer's).
    lines = (line.decode() for line in raw)
    stopped = None
    with raw, click.progressbar(length=size, label=f"Importing {path.name}") as bar:
        try:
            report = import_subscribers(db.session, lines, confirmed, path.name,
                                        on_progress=lambda _rows: bar.update(raw.tell() - bar.pos))
        except ImportStopped as exc:
            report, stopped = exc.report, f"{path.name}: {exc}"
        except ImportFileError as exc:
            db.session.rollback()
            raise click.ClickException(f"{path.name}: {exc}") from None
        bar.update(size - bar.pos)
    if report.mails_owed:
        ledger.wake()
    click.echo(summary(report, confirmed))
    for line, reason in report.bad_lines[:SHOW_BAD_LINES]:
        click.echo(f"line {line}: {reason}")
    if report.skipped > SHOW_BAD_LINES:
        click.echo(f"... and {report.skipped - SHOW_BAD_LINES} more bad lines. Fix them and import the file again: "
                   "the rows already imported are updated, not duplicated.")
    if stopped:
        raise click.ClickException(stopped)


def summary(report: ImportReport, confirmed: bool) -> str:
    """One line saying what the import did; each row read is counted once."""
    parts = [f"{report.created} added", f"{report.updated} already known"]
    if report.suppressed:
        parts.append(f"{report.suppressed} left alone (unsubscribed, bounced or complained)")
    if report.erased:
        parts.append(f"{report.erased} not added back (erased on request earlier)")
    parts += [_count(report.duplicates, "duplicate"), f"{_count(report.skipped, 'bad line')} skipped"]
    mail = ("nothing sent (consent recorded as given elsewhere)" if confirmed
            else f"{_count(report.mails_owed, 'confirmation email')} queued")
    return f"Read {_count(report.rows, 'row')}: {', '.join(parts)}; {mail}."


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@subscribers.command("export")
@click.option("--status", type=click.Choice([s.value for s in Status]), help="Only subscribers with this status.")
@with_appcontext
def export_command(status: str | None) -> None:
    """Write all subscribers (or those with --status) to standard output as CSV."""
    for chunk in export_csv(db.session, status, batch=EXPORT_BATCH):
        click.echo(chunk, nl=False)


@subscribers.command("data")
@click.argument("email")
@with_appcontext
def data_command(email: str) -> None:
    """Print everything stored about the subscriber EMAIL as JSON (for a data access request)."""
    import json

    from ..people.privacy import export_subscriber

    click.echo(json.dumps(export_subscriber(db.session, _one(email)), indent=2, ensure_ascii=False))


@subscribers.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def erase_command(email: str, yes: bool) -> None:
    """Erase the subscriber EMAIL and their personal data; only a hash is kept, so imports skip them."""
    from ..people.privacy import erase_subscriber

    subscriber = _one(email)
    if not yes:
        click.confirm(f"Erase {subscriber.email} and everything stored about them? This cannot be undone", abort=True)
    erase_subscriber(db.session, subscriber)
    db.session.commit()
    click.echo(f"Erased {email}.")


def _one(email: str):
    from sqlalchemy import select

    from ..models import Subscriber

    found = db.session.scalar(select(Subscriber).where(Subscriber.email == email.strip().lower()))
    if found is None:
        raise click.ClickException(f"No subscriber has the address {email!r}. Check the spelling.")
    return found
