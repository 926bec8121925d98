"""/api/v1/digests: compose from the unsent posts, preview, test, send, follow, pause, resume, cancel."""
from __future__ import annotations

from flask import Response, jsonify, request
from sqlalchemy import select

from ..addresses import InvalidSignup
from ..extensions import db
from ..links import unsubscribe_url
from ..models import Digest, Subscriber, utcnow
from ..outbox import digest_mail, ledger
from ..posts import digest_schedule, digests, engagement, local_time, reputation, resends, segments, subject_tests
from ..posts.audiences import RuleError
from . import bp, error, read_json_object


@bp.post("/digests")
def create_digest():
    body = read_json_object() if request.content_length else {}
    subject, intro, post_ids = body.get("subject"), body.get("intro"), body.get("post_ids")
    audience = body.get("audience")
    if not _fields_ok(subject, intro, post_ids) or audience not in (None, *digests.AUDIENCES):
        return error('Expected {"subject": str, "intro": str, "post_ids": [int], "audience": "every" | "monthly", '
                     '"segment": int, "magnet": str, "dry_run": bool, "test_to": str, "send_at": ISO 8601 date-time '
                     'with offset, "subjects": [str], "test_share": number, "decide_after_hours": number, '
                     '"local_time": "HH:MM"}, all optional.', 400)
    if body.get("test_to") is not None and not isinstance(body["test_to"], str):
        return error('"test_to" must be one email address, as a string: "editor@example.com".', 400, field="test_to")
    try:
        test = subject_tests.read_test(body.get("subjects"), body.get("test_share"), body.get("decide_after_hours"))
        if test and subject is not None:
            raise digests.DigestError('give "subject" or "subjects" (a subject test), not both', field="subjects")
        to = segments.recipients_of(db.session, body.get("segment"), body.get("magnet"))
        return _compose(body, test["subjects"][0] if test else subject, intro, post_ids,
                        segments.audience_for(to, audience), to, test)
    except RuleError as exc:
        return error(str(exc), 422, field=exc.field)
    except digests.NothingNew as exc:
        return error(str(exc), 409)
    except digests.DigestError as exc:
        # A time that cannot be read or has passed is a bad request, like a field of the wrong type.
        return error(str(exc), 400 if exc.field in ("send_at", "local_time") else 422,
                     **({"field": exc.field} if exc.field else {}))
    except InvalidSignup as exc:
        return error(str(exc), 422, field="test_to")


def _compose(body: dict, subject, intro, post_ids, audience, to: segments.Recipients, test: dict):
    """A dry run, a test copy, a digest scheduled for send_at, or one sent now; `test`: its subject test's columns
    (the dry run and the test copy show the first subject)."""
    send_at = None if body.get("send_at") is None else digest_schedule.read_send_at(body["send_at"])
    at = None if body.get("local_time") is None else local_time.read_local_time(body["local_time"])
    if body.get("dry_run"):
        posts = digests.choose_posts(db.session, post_ids, audience, to.rules)
        sample = digest_mail.preview(digests.subject_for(subject, posts), intro or "", posts)
        return jsonify(dry_run=True, subject=sample.subject, posts=[_post(p) for p in posts], audience=audience,
                       segment=to.segment_id, rules=to.rules,
                       recipients=db.session.scalar(digests.confirmed_count(audience, to.rules)), html=sample.html,
                       text=sample.text)
    if body.get("test_to"):
        count = digests.send_test(db.session, body["test_to"], subject, intro, post_ids)
        db.session.commit()
        ledger.wake()
        return jsonify(test_to=body["test_to"], posts=count, message="A test copy is on its way."), 202
    if send_at is not None:
        digest = digest_schedule.schedule_digest(db.session, send_at, subject, intro, post_ids, audience, to=to,
                                                 local_time=at, **test)
    else:
        digest = digests.create_digest(db.session, subject, intro, post_ids, audience, to, local_time=at, **test)
    db.session.commit()
    if send_at is None:
        ledger.wake()
    return jsonify(digests.progress(db.session, digest)), 202


@bp.get("/digests")
def list_digests():
    recent = db.session.scalars(select(Digest).order_by(Digest.id.desc()).limit(50))
    listed = [digests.progress(db.session, d) for d in recent]
    db.session.commit()  # keeps the final counts of digests that just finished: counted once, not per request
    return jsonify(digests=listed)


def _digest(digest_id: int) -> Digest | None:
    # An id past the database's integer range is no digest, not an overflow error.
    return db.session.get(Digest, digest_id) if digest_id < 2**63 else None


@bp.get("/digests/<int:digest_id>")
def digest_status(digest_id: int):
    digest = _digest(digest_id)
    if digest is None:
        return error(f"There is no digest {digest_id}.", 404)
    state = {**digests.progress(db.session, digest), "audience": digest.audience, "segment": digest.segment_id,
             "rules": digest.rules,
             **engagement.digest_clicks(db.session, digest).as_json(),
             **reputation.digest_rates(db.session, [digest.id])[digest.id].as_json(),
             **local_time.waiting_for(db.session, digest, utcnow()).as_json(),
             "paused_reason": digest.paused_reason, "subject_test": subject_tests.variants(db.session, digest),
             **resends.summary(db.session, digest)}
    db.session.commit()
    return jsonify(state)


@bp.post("/digests/<int:digest_id>/resend")
def resend_digest(digest_id: int):
    """The digest again, under a new subject, to its readers who did not engage: now or after_hours later."""
    digest = _digest(digest_id)
    if digest is None:
        return error(f"There is no digest {digest_id}.", 404)
    body = read_json_object() if request.content_length else {}
    try:
        subject, after_hours, unless = resends.read_resend(body.get("subject"), body.get("after_hours"),
                                                           body.get("unless"))
        resend = resends.schedule_resend(db.session, digest, subject, after_hours, unless)
        if not after_hours:
            digests.start_digest(db.session, resend)
    except resends.AlreadyResent as exc:
        db.session.rollback()
        return error(str(exc), 409)
    except digests.DigestError as exc:
        db.session.rollback()
        return error(str(exc), 422, field=exc.field)
    db.session.commit()
    if not after_hours:
        ledger.wake()
    return jsonify({**digests.progress(db.session, resend), **resends.summary(db.session, resend)}), 202


@bp.post("/digests/<int:digest_id>/<any(pause, resume, cancel):action>")
def steer_digest(digest_id: int, action: str):
    digest = _digest(digest_id)
    if digest is None:
        return error(f"There is no digest {digest_id}.", 404)
    try:
        getattr(digests, action)(db.session, digest)
    except digests.DigestError as exc:
        return error(str(exc), 409)
    db.session.commit()
    if action == "resume":
        ledger.wake()
    return jsonify(digests.progress(db.session, digest))


@bp.get("/digests/preview")
def preview():
    """The next digest as one subscriber (?email=) or anyone would see it; ?format=html|text."""
    try:
        posts = digests.choose_posts(db.session)
    except digests.NothingNew as exc:
        return error(str(exc), 409)
    subscriber = None
    if request.args.get("email"):
        subscriber = db.session.scalar(select(Subscriber).where(Subscriber.email == request.args["email"].strip().lower()))
        if subscriber is None:
            return error("No subscriber has that email address.", 404)
    reader = {"name": subscriber.name, "unsubscribe_url": unsubscribe_url(subscriber.id)} if subscriber else {}
    parts = digest_mail.preview(digests.default_subject(posts), request.args.get("intro", ""), posts, **reader)
    if request.args.get("format", "html") == "text":
        return Response(parts.text, mimetype="text/plain")
    return Response(parts.html, mimetype="text/html")


def _fields_ok(subject, intro, post_ids) -> bool:
    return (subject is None or isinstance(subject, str)) and (intro is None or isinstance(intro, str)) and (
        post_ids is None or (isinstance(post_ids, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in post_ids)))


def _post(post) -> dict:
    return {"id": post.id, "title": post.title, "url": post.url,
            "published_at": post.published_at.isoformat() if post.published_at else None}
