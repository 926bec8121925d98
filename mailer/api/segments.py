"""/api/v1/segments: saved segments with their counts, and the same rules read from a query string."""
from __future__ import annotations

from flask import jsonify
from werkzeug.datastructures import MultiDict

from ..extensions import db
from ..models import Segment
from ..posts import segments
from ..posts.audiences import RuleError, checked
from . import bp, error, read_json_object

# ?magnet=handbook&magnet=course (any of them), ?form=, ?page=: lists; the rest one value each.
LISTS = {"magnet": "magnets", "form": "forms", "page": "pages"}
BOOLEANS = {"true": True, "false": False}


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


def rules_from_query(args: MultiDict) -> dict:
    """The rules that the query string gives (?magnet=handbook&engaged_within_days=30), checked; RuleError names
    the parameter."""
    rules: dict = {key: args.getlist(name) for name, key in LISTS.items() if args.getlist(name)}
    for key in ("signed_up", "confirmed"):
        ends = {end: args[f"{key}_{end}"] for end in ("from", "to") if args.get(f"{key}_{end}")}
        if ends:
            rules[key] = ends
    for name in ("imported", "engaged"):
        if args.get(name):
            if args[name] not in BOOLEANS:
                raise RuleError(f"?{name}= must be true or false", name)
            rules[name] = BOOLEANS[args[name]]
    if args.get("engaged_within_days"):
        days = args["engaged_within_days"]
        rules["engaged_within_days"] = int(days) if days.isascii() and days.isdigit() and len(days) <= 6 else days
    if args.get("preference"):
        rules["preference"] = args["preference"]
    try:
        return checked(db.session, rules)
    except RuleError as exc:
        raise RuleError(str(exc), _parameter(exc.field)) from None


def _parameter(field: str) -> str:
    """rules.magnets → magnet: the query parameter a rule comes from."""
    key = field.removeprefix("rules.")
    return next((name for name, listed in LISTS.items() if listed == key), key)
