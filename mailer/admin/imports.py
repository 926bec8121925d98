"""A CSV upload imported a chunk per request, so the page can show progress; resumable, state kept beside the file."""
from __future__ import annotations

import fcntl
import json
import re
import secrets
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from ..people.importing import ImportFileError, ImportReport, ImportStopped, guess_delimiter, import_subscribers

CHUNK = 2000  # records per step: a second or two of work
# The rows read are the sum of the six after "rows", each row counted once; mails_owed is counted beside them.
COUNTS = ("rows", "created", "updated", "duplicates", "suppressed", "erased", "skipped", "mails_owed")
KEEP_BAD_LINES = 1000


def folder(instance: str) -> Path:
    path = Path(instance) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def start(session: Session, instance: str, upload: BinaryIO, filename: str, confirmed: bool) -> str:
    """Store the upload and check its header; returns the import's id. ImportFileError if it cannot be imported."""
    token = secrets.token_hex(8)
    csv_path = folder(instance) / f"{token}.csv"
    with csv_path.open("wb") as out:
        while block := upload.read(1 << 20):
            out.write(block)
    with csv_path.open("rb") as f:
        header, first = f.readline(), f.readline()
    try:
        text = header.decode()
        # One delimiter for the whole file, guessed as the CLI does from the header and the first record: a part
        # read later must not guess again from its own first line.
        delimiter = guess_delimiter([text, first.decode(errors="replace")])
        import_subscribers(session, [text], confirmed, filename, delimiter=delimiter)  # checked, nothing added
    except (ImportFileError, UnicodeDecodeError) as exc:
        csv_path.unlink()
        raise ImportFileError(str(exc) if isinstance(exc, ImportFileError) else
                              "The first line is not UTF-8 text; save the file as 'CSV UTF-8' and upload it again.")
    state = {"name": filename[:200], "confirmed": confirmed, "size": csv_path.stat().st_size, "offset": len(header),
             "line": 2, "done": False, "error": None, "bad_lines": [], "delimiter": delimiter, **{k: 0 for k in COUNTS}}
    _save(instance, token, state)
    return token


def load(instance: str, token: str) -> dict | None:
    path = folder(instance) / f"{token}.json"
    return json.loads(path.read_text()) if token.isalnum() and path.is_file() else None


def step(session: Session, instance: str, token: str, records: int | None = None) -> dict | None:
    """Import the next `records` records and return the state; another request already at work is left to it."""
    state = load(instance, token)
    if state is None or state["done"]:
        return state
    with (folder(instance) / f"{token}.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return state
        state = load(instance, token)
        if not state["done"]:
            _run(session, instance, token, state, records or CHUNK)
            _save(instance, token, state)
    return state


def _run(session: Session, instance: str, token: str, state: dict, records: int) -> None:
    csv_path = folder(instance) / f"{token}.csv"
    line, error = state["line"], None
    with csv_path.open("rb") as f:
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
                                        delimiter=state.get("delimiter"))  # get: a state saved before it was kept
        except ImportStopped as exc:
            report, error = exc.report, re.sub(r"^Line (\d+)", lambda m: f"Line {line + int(m[1]) - 2}", str(exc))
        except ImportFileError as exc:  # the file as a whole, which start() checked: end the import, saying why
            report, error = ImportReport(), str(exc)
        for key in COUNTS:
            state[key] = state.get(key, 0) + getattr(report, key)  # get: a state saved before "erased" was counted
        room = KEEP_BAD_LINES - len(state["bad_lines"])
        state["bad_lines"] += [[line + n - 2, reason] for n, reason in report.bad_lines[:max(room, 0)]]
    state["offset"] += used
    state["line"] += len(lines)
    if error or not lines or state["offset"] >= state["size"]:
        state.update(done=True, error=error)
        csv_path.unlink()


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


def _save(instance: str, token: str, state: dict) -> None:
    path = folder(instance) / f"{token}.json"
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(state))
    temp.replace(path)
