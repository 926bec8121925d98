"""/api/v1/posts and /api/v1/feed/fetch: the posts that digests are made of."""
from __future__ import annotations

from dataclasses import asdict
from datetime import timezone

from flask import current_app, jsonify, request

from ..extensions import db
from ..models import Post, aware
from ..posts.feeds import FeedError, fetch_feed
from ..posts.store import InvalidPost, add_post, list_posts
from . import bp, error, read_json_object

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
FIELDS = ("title", "url", "summary", "published_at")


def post_json(post: Post) -> dict:
    utc = aware(post.published_at).astimezone(timezone.utc) if post.published_at else None
    # Not strftime's %Y: glibc does not pad a year before 1000 to four digits, and ISO 8601 needs them.
    when = f"{utc.year:04d}-{utc:%m-%dT%H:%M:%S}Z" if utc else None
    return {"id": post.id, "title": post.title, "url": post.url, "summary": post.summary_html,
            "published_at": when, "source": post.source}


def _positive_int(name: str) -> int | None:
    raw = request.args.get(name, "")
    if raw == "":
        return None
    # Bounded length: a 30-digit id would overflow the database's integer, not just miss.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18 and int(raw) > 0):
        raise InvalidPost(name, f"?{name}= must be a positive whole number.")
    return int(raw)


@bp.get("/posts")
def posts_list():
    """Newest first; `next` is the `?before=` of the following page, null on the last."""
    try:
        limit = min(_positive_int("limit") or DEFAULT_LIMIT, MAX_LIMIT)
        before = _positive_int("before")
    except InvalidPost as exc:
        return error(str(exc), 400, field=exc.field)
    posts = list_posts(db.session, limit + 1, before)  # one more than shown tells whether a next page exists
    more = len(posts) > limit
    posts = posts[:limit]
    return jsonify(posts=[post_json(p) for p in posts], next=posts[-1].id if more else None)


@bp.post("/posts")
def posts_add():
    """Add a post by hand (or update the one with this url): 400 for a body that is not a post, 422 for a bad field."""
    data = read_json_object()
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        return error(f"Unknown field {unknown[0]!r}: a post has title, url, summary and published_at.", 400,
                     field=unknown[0])
    try:
        post = add_post(db.session, data.get("title"), data.get("url"), data.get("summary"), data.get("published_at"))
    except InvalidPost as exc:
        db.session.rollback()
        return error(str(exc), 422, field=exc.field)
    db.session.commit()
    return jsonify(post_json(post)), 201


@bp.post("/feed/fetch")
def feed_fetch():
    """Read FEED_URL now; 409 when it is not set, 502 when the feed cannot be read."""
    url = current_app.config.get("FEED_URL")
    if not url:
        return error("FEED_URL is not set: set it to the blog's feed (e.g. https://blog.example.com/feed/) "
                     "and restart mailer.", 409)
    try:
        result = fetch_feed(db.session, url)
    except FeedError as exc:
        return error(str(exc), 502)
    return jsonify(asdict(result))
