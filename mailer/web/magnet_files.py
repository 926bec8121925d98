"""A magnet's file as a response: an upload streamed from the database a part at a time (with its length, an ETag
and byte ranges, so a broken download resumes), or the file shipped with the package."""
from __future__ import annotations

import logging

from flask import Response, request, send_file
from werkzeug.wsgi import wrap_file

from ..extensions import db
from ..magnets import file_path
from ..models import LeadMagnet
from ..uploads import store

log = logging.getLogger(__name__)


class FileMissing(Exception):
    """The magnet names a file on a disk this host does not have."""


def magnet_file(magnet: LeadMagnet) -> Response:
    upload = store.newest_for_magnet(db.session, magnet.id)
    if upload is None:
        path = file_path(magnet)
        if not path.is_file():
            # An upload from before they were kept in the database, on another host's disk.
            log.error("magnet %s: its file %s is not on this host; run `mailer magnets store-files` where it is",
                      magnet.slug, path)
            raise FileMissing(magnet.slug)
        return send_file(path, mimetype=magnet.content_type, download_name=magnet.filename)
    reader = store.open_upload(db.engine, upload)
    response = send_file(reader, mimetype=magnet.content_type, download_name=magnet.filename, conditional=False,
                         etag=upload.sha256, last_modified=upload.created_at)
    # send_file's wrapper hands the server 8 KB at a time; a part at a time costs the worker a fraction of the CPU.
    response.response = wrap_file(request.environ, reader, buffer_size=upload.part_size)
    response.content_length = upload.size
    return response.make_conditional(request.environ, accept_ranges=True, complete_length=upload.size)
