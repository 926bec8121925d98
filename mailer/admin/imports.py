"""A CSV upload imported a part per step, so the page can show progress; resumable. The file and its state live in
the database, so the page on any web host shows it and any worker (or the page itself) carries it on, one at a time
under a lease."""
from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import BinaryIO

from flask import current_app
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from ..models import SubscriberImport, Upload, utcnow
from ..people.importing import ImportFileError, ImportReport, ImportStopped, guess_delimiter, import_subscribers
from ..uploads import store

log = logging.getLogger(__name__)
CHUNK = 2000  # records per step: a second or two of work
# The rows read are the sum of the six after "rows", each row counted once; mails_owed is counted beside them.
COUNTS = ("rows", "created", "updated", "duplicates", "suppressed", "erased", "skipped", "mails_owed")
KEEP_BAD_LINES = 1000
LEASE = timedelta(minutes=5)  # far longer than a step: only a host that died mid-step is waited for


def start(session: Session, upload: BinaryIO, filename: str, confirmed: bool) -> str:
    """Check the upload's header and store it; returns the import's id. ImportFileError if it cannot be imported.

    The caller commits, then hands the import to a worker (hand_to_worker)."""
    header, first = upload.readline(), upload.readline()
    try:
        text = header.decode()
        # One delimiter for the whole file, guessed as the CLI does from the header and the first record: a part
        # read later must not guess again from its own first line.
        delimiter = guess_delimiter([text, first.decode(errors="replace")])
        import_subscribers(session, [text], confirmed, filename, delimiter=delimiter)  # checked, nothing added
    except (ImportFileError, UnicodeDecodeError) as exc:
        raise ImportFileError(str(exc) if isinstance(exc, ImportFileError) else
                              "The first line is not UTF-8 text; save the file as 'CSV UTF-8' and upload it again.")
    upload.seek(0)
    stored = store.save(session, upload)
    token = secrets.token_hex(8)
    session.add(SubscriberImport(token=token, upload_id=stored.id, state={
        "name": filename[:200], "confirmed": confirmed, "size": stored.size, "offset": len(header), "line": 2,
        "done": False, "error": None, "bad_lines": [], "delimiter": delimiter, **{k: 0 for k in COUNTS}}))
    return token


def hand_to_worker(token: str) -> None:
    """Ask a worker to carry the import on; call after commit. Without one, the progress page's steps do it."""
    try:
        current_app.extensions["celery"].send_task("worker.tasks.import_file", args=[token], ignore_result=True)
    except Exception as exc:  # any broker failure: the import waits in the database for the page's steps
        log.warning("could not reach the task broker (%s); the import goes on while its page is open", exc)


def load(session: Session, token: str) -> dict | None:
    return session.scalar(select(SubscriberImport.state).where(SubscriberImport.token == token))


def step(session: Session, token: str, records: int | None = None) -> dict | None:
    """Import the next `records` records and return the state; one already at work elsewhere is left to it (busy)."""
    row = session.scalar(select(SubscriberImport).where(SubscriberImport.token == token))
    if row is None or row.state["done"]:
        return row and row.state
    import_id, upload_id, lease = row.id, row.upload_id, _claim(session, row.id)
    if lease is None:
        return {**row.state, "busy": True}
    state = dict(session.scalar(select(SubscriberImport.state).where(SubscriberImport.id == import_id)))
    if not state["done"]:
        upload = session.get(Upload, upload_id) if upload_id else None
        if upload is None:
            state.update(done=True, error="The uploaded file is gone; upload it again (importing again is safe).")
        else:
            _run(session, upload, state, records or CHUNK)
    # Written only while the lease is ours: a step that outlived it leaves the state to the one that took over.
    saved = session.execute(update(SubscriberImport).where(
        SubscriberImport.id == import_id, SubscriberImport.busy_until == lease).values(
        state=state, busy_until=None, updated_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if saved and state["done"] and upload_id:
        session.execute(delete(Upload).where(Upload.id == upload_id))  # the import's row keeps the report
    session.commit()
    return state


def _claim(session: Session, import_id: int) -> datetime | None:
    now = utcnow()
    lease = now + LEASE
    claimed = session.execute(update(SubscriberImport).where(
        SubscriberImport.id == import_id,
        or_(SubscriberImport.busy_until.is_(None), SubscriberImport.busy_until < now)).values(
        busy_until=lease).execution_options(synchronize_session=False)).rowcount
    session.commit()
    return lease if claimed else None


def _run(session: Session, upload: Upload, state: dict, records: int) -> None:
    line, error = state["line"], None
    with store.open_upload(session.get_bind(), upload) as f:
        header = f.readline().decode()
        f.seek(state["offset"])
        lines, used = [], 0
        try:
            for _ in range(records):
                record = _record(f)
                if not record:
                    break
                lines += record[0]
                used += record[1]
        except UnicodeDecodeError:
            error = (f"Line {line + len(lines)} is not UTF-8 text; save the file as 'CSV UTF-8' and import it again "
                     "(the lines before it are saved; importing again is safe).")
    if lines:
        try:
            report = import_subscribers(session, [header, *lines], state["confirmed"], state["name"],
                                        delimiter=state["delimiter"])
        except ImportStopped as exc:
            report, error = exc.report, re.sub(r"^Line (\d+)", lambda m: f"Line {line + int(m[1]) - 2}", str(exc))
        except ImportFileError as exc:  # the file as a whole, which start() checked: end the import, saying why
            report, error = ImportReport(), str(exc)
        for key in COUNTS:
            state[key] += getattr(report, key)
        room = KEEP_BAD_LINES - len(state["bad_lines"])
        state["bad_lines"] += [[line + n - 2, reason] for n, reason in report.bad_lines[:max(room, 0)]]
    state["offset"] += used
    state["line"] += len(lines)
    if error or not lines or state["offset"] >= state["size"]:
        state.update(done=True, error=error)


def _record(f: BinaryIO) -> tuple[list[str], int] | None:
    """The lines of the next CSV record and their length in bytes: a record ends where its quotes are balanced."""
    lines, used, quotes = [], 0, 0
    while raw := f.readline():
        lines.append(raw.decode())
        used += len(raw)
        quotes += lines[-1].count('"')
        if quotes % 2 == 0:
            return lines, used
    return (lines, used) if lines else None
