"""/api/v1/segments: saved segments with their counts, and the same rules read from a query string."""
from __future__ import annotations

from flask import jsonify

from ..extensions import db
from ..models import Segment
from ..posts import segments
from ..posts.audiences import RuleError
from . import bp, error, read_json_object


@bp.get("/segments")
def segments_list():
    return jsonify(segments=[segments.as_json(s) for s in segments.segments(db.session)])


@bp.post("/segments")
def segment_create():
    body = read_json_object()
    try:
        segment = segments.create_segment(db.session, body.get("name"), body.get("rules", {}))
    except RuleError as exc:
        db.session.rollback()
        return error(str(exc), 422, field=exc.field)
    count = segments.segment_count(db.session, segment.rules)
    db.session.commit()
    return jsonify(segments.as_json(segment, count)), 201


@bp.get("/segments/<int:segment_id>")
def segment_one(segment_id: int):
    segment = db.session.get(Segment, segment_id) if segment_id < 2**63 else None
    if segment is None:
        return error(f"There is no segment {segment_id}.", 404)
    return jsonify(segments.as_json(segment, segments.segment_count(db.session, segment.rules)))
