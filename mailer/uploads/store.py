"""Keeping an upload in parts and reading it back a part at a time: no host's disk, and never a whole file in memory.

A part is one row of `upload_part` (bytea on PostgreSQL, a blob on SQLite). Each part is read by a statement on a
connection of its own, given back at once, so a slow client downloading a big file holds no connection between
parts.
"""
from __future__ import annotations

import hashlib
import io
from typing import BinaryIO

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ..dialect import on_postgresql
from ..models import Upload, UploadPart

PART = 1024 * 1024  # bytes per row: a 20 MB file is 20 rows, each read in a millisecond or two


def save(session: Session, stream: BinaryIO, magnet_id: int | None = None) -> Upload:
    """Store everything `stream` holds as a new Upload, in the caller's transaction."""
    upload = Upload(magnet_id=magnet_id, size=0, part_size=PART, sha256="")
    session.add(upload)
    session.flush()
    digest, number = hashlib.sha256(), 0
    while block := _read_part(stream):
        # Core inserts: the session keeps no part, so memory holds one part at a time whatever the file's size.
        session.execute(insert(UploadPart).values(upload_id=upload.id, number=number, data=block))
        digest.update(block)
        upload.size += len(block)
        number += 1
    upload.sha256 = digest.hexdigest()
    return upload


def _read_part(stream: BinaryIO) -> bytes:
    """The next PART bytes (fewer only at the end): a stream may hand back less than asked."""
    block = b""
    while len(block) < PART and (more := stream.read(PART - len(block))):
        block += more
    return block


def open_upload(engine: Engine, upload: Upload) -> io.BufferedReader:
    """The upload as a seekable binary file, read from the database a part at a time as it is read."""
    return io.BufferedReader(_Parts(engine, upload.id, upload.size, upload.part_size), buffer_size=upload.part_size)


def newest_for_magnet(session: Session, magnet_id: int) -> Upload | None:
    return session.scalar(select(Upload).where(Upload.magnet_id == magnet_id).order_by(Upload.id.desc()).limit(1))


def forget_older(session: Session, upload: Upload) -> None:
    """Delete the magnet's uploads before `upload`: the one a new file replaced (links mailed name the magnet)."""
    session.execute(delete(Upload).where(Upload.magnet_id == upload.magnet_id, Upload.id < upload.id))


class _Parts(io.RawIOBase):
    """An upload's bytes as a raw file: a read fetches the part holding the position, and keeps that one part."""

    def __init__(self, engine: Engine, upload_id: int, size: int, part_size: int):
        super().__init__()
        self._engine, self._id, self._size, self._part_size = engine, upload_id, size, part_size
        self._position, self._number, self._data = 0, -1, b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        if self._position >= self._size:
            return 0
        number, within = divmod(self._position, self._part_size)
        if number != self._number:
            self._number, self._data = number, self._fetch(number)
        piece = memoryview(self._data)[within:within + len(buffer)]
        if not piece:  # the part is gone: the file was replaced or deleted while being read
            raise OSError(f"upload {self._id} lost its part {number} while it was being read")
        buffer[:len(piece)] = piece
        self._position += len(piece)
        return len(piece)

    def _fetch(self, number: int) -> bytes:
        with self._engine.connect() as connection:
            if not on_postgresql(connection):
                return connection.scalar(select(UploadPart.data).where(
                    UploadPart.upload_id == self._id, UploadPart.number == number)) or b""
            # In binary: as text, bytea comes as hex, twice the bytes, and decoding it costs more than the query.
            with connection.connection.driver_connection.cursor(binary=True) as cursor:
                row = cursor.execute("SELECT data FROM upload_part WHERE upload_id = %s AND number = %s",
                                     (self._id, number)).fetchone()
            return row[0] if row else b""
