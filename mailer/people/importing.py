"""Importing subscribers from a CSV file of any size: streamed, in batches, bad lines reported and skipped."""
from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from ..addresses import InvalidSignup, clean_name, normalise_email
from ..models import Status, utcnow
from .exporting import runs_as_formula
from .roster import IMPORT, Added, add_subscribers

BATCH = 1000
KEEP_BAD_LINES = 1000
NEVER_IMPORTED = (Status.UNSUBSCRIBED.value, Status.BOUNCED.value, Status.COMPLAINED.value)
# Fed to the CSV reader after the last line. No UTF-8 text holds a lone surrogate, so it comes back as a row of
# its own, unless a quote is still open: then the reader has taken it into that field.
END_OF_FILE = "\ud800"


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no header, no email column, not text)."""


class ImportStopped(ImportFileError):
    """A line part-way through cannot be read: the rows before it are imported, and `report` says what they did."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ImportReport(Added):
    rows: int = 0
    skipped: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # the first KEEP_BAD_LINES of `skipped`

    def skip(self, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.bad_lines) < KEEP_BAD_LINES:
            self.bad_lines.append((line, reason))


def import_subscribers(session: Session, lines: Iterable[str], confirmed: bool, source_name: str,
                       on_progress: Callable[[int], None] | None = None, delimiter: str | None = None) -> ImportReport:
    """Add or update everyone in a CSV with an `email` (and optional `name`) column.

    Commits after each batch: a huge file never holds one long transaction, and re-running after a failure is safe.
    A line part-way through that cannot be read raises ImportStopped, after saving the rows before it. Without a
    `delimiter`, it is guessed from the first two lines (guess_delimiter): a file read in parts passes the one
    guessed for the whole file.
    """
    report, batch, stamp = ImportReport(), {}, utcnow()
    columns, records = _read_csv(lines, delimiter)

    def flush() -> None:
        report.add(add_subscribers(session, batch, confirmed=confirmed, form=IMPORT,
                                   source=f"the file {source_name}", stamp=stamp))
        session.commit()
        batch.clear()
        if on_progress:
            on_progress(report.rows)

    try:
        for line, row in records:
            report.rows += 1
            try:
                email, name = _person(row, columns, confirmed)
            except InvalidSignup as exc:
                report.skip(line, str(exc))
                continue
            if email in batch:
                report.duplicates += 1
                batch[email] = batch[email] or name
            else:
                batch[email] = name
                if len(batch) >= BATCH:
                    flush()
    except ImportFileError as exc:
        flush()  # the message promises the rows before the bad line are saved
        raise ImportStopped(str(exc), report) from None
    flush()
    return report


def from_text_cell(value: str) -> str:
    """A cell as the export wrote it, without the apostrophe that kept a spreadsheet from running it."""
    return value[1:] if value.startswith("'") and runs_as_formula(value) else value


def _person(row: list[str], columns: list[str], confirmed: bool) -> tuple[str, str | None]:
    """The normalised email and name of one row, or InvalidSignup with the reason to report."""
    if len(row) != len(columns):
        raise InvalidSignup("row", f"expected {len(columns)} columns, found {len(row)}")
    cell = {column: from_text_cell(value) for column, value in zip(columns, row)}
    try:
        email, name = normalise_email(cell["email"]), clean_name(cell.get("name"))
    except InvalidSignup as exc:
        if exc.field != "email":
            raise InvalidSignup(exc.field, f"bad name: {exc}") from None
        detail = str(exc).removeprefix("That email address is not valid: ")
        raise InvalidSignup("email", f"not a valid email: {cell['email'].strip()[:100]!r} ({detail})") from None
    # An export read back in must not resubscribe anyone, nor confirm someone who never did.
    status = cell.get("status", "").strip().lower()
    if status in NEVER_IMPORTED:
        raise InvalidSignup("status", f"marked {status} in the file: not imported, so as not to resubscribe them")
    if confirmed and status == Status.PENDING.value:
        raise InvalidSignup("status", "marked pending in the file: they never confirmed, so not imported as confirmed")
    return email, name


def guess_delimiter(head: list[str]) -> str:
    """',' or ';' (what spreadsheets in some languages write), judged from the header and the first record."""
    try:
        return csv.Sniffer().sniff("\n".join(x.rstrip("\r\n") for x in head), delimiters=",;").delimiter
    except csv.Error:
        return ","  # one column, or nothing to tell them apart


def _read_csv(lines: Iterable[str], delimiter: str | None = None) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header's column names (lower-cased) and the records after it, each with the line it starts on."""
    lines, head = iter(lines), []
    for number in (1, 2):  # enough for the Sniffer, and all that is ever held
        try:
            head.append(next(lines))
        except StopIteration:
            break
        except UnicodeDecodeError as exc:
            raise _unreadable(number, exc) from None
    if not head or not head[0].strip("\ufeff \r\n"):
        raise ImportFileError("The first line is empty; it must name the columns, one of them 'email'.")
    head[0] = head[0].lstrip("\ufeff")  # the byte order mark Excel writes, when not opened as utf-8-sig
    reader = csv.reader(itertools.chain(head, lines, [END_OF_FILE]), delimiter=delimiter or guess_delimiter(head))
    header = next(reader)
    if header[-1].endswith(END_OF_FILE):
        raise _unreadable(1, QuoteNeverClosed())
    columns = [c.strip().lower() for c in header]
    if "email" not in columns:
        raise ImportFileError(f"The first line has no 'email' column (it has: {', '.join(header)}). "
                              "Name the columns in the first line, one of them 'email' (and optionally 'name').")
    return columns, _records(reader)


def _records(reader) -> Iterator[tuple[int, list[str]]]:
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (UnicodeDecodeError, csv.Error) as exc:
            raise _unreadable(start, exc) from None
        if row == [END_OF_FILE]:
            return
        if row and row[-1].endswith(END_OF_FILE):
            raise _unreadable(start, QuoteNeverClosed())
        line, start = start, reader.line_num + 1
        if any(cell.strip() for cell in row):  # blank lines, and lines of only separators, are not rows
            yield line, row


class QuoteNeverClosed(csv.Error):
    """The file ends inside a quoted field."""


def _unreadable(line: int, exc: Exception) -> ImportFileError:
    if isinstance(exc, UnicodeDecodeError):
        problem = f"is not UTF-8 text ({exc.reason}); save the file as 'CSV UTF-8'"
    elif isinstance(exc, QuoteNeverClosed):
        problem = ('opens a quote (") that is never closed, so it and every line after it were read as one field '
                   "and none of them was imported; close the quote (or remove it)")
    else:
        problem = f"cannot be read as CSV ({exc}: a quote left open?); fix it"
    return ImportFileError(f"Line {line} {problem} and import it again (the lines before it are saved; "
                           "importing again is safe).")
