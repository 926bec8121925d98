"""The digest as mail: its frame (rendered once, each reader's values filled in), the greeting and the test copy."""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

from flask import current_app
from sqlalchemy import select

from ..extensions import db
from ..mail import identity
from ..mail.messages import ListMailFrame, Parts, placeholder, render_parts
from ..models import Digest, Post


def render_digest(subject: str, intro: str, posts: list[Post], for_recipients: bool = False,
                  digest_id: int | None = None) -> Parts:
    """The digest with placeholders where each recipient's name and unsubscribe link go.

    `for_recipients` (the frame the workers send) adds placeholders for each recipient's own links: the
    preference page, a tracked link per post (`link:<post id>`, unless CLICK_TRACKING is off) with the hidden link
    only machines follow (`hidden_link`, posts/scanners), and the open pixel
    (with OPEN_TRACKING). Previews and test copies get the posts' own links. With `digest_id`, the mail links to
    its archive page ("View in your browser"), unless the archive is off.
    """
    config = current_app.config
    tracked = for_recipients and config.get("CLICK_TRACKING", True)
    studio = identity.current()
    context = {"subject": subject, "intro": intro, "posts": posts, "blog_url": studio.blog_url,
               "archive_url": studio.archive_url(digest_id) if digest_id else None,
               "greeting": placeholder("greeting"), "unsubscribe_url": placeholder("unsubscribe_url"),
               "post_links": {p.id: placeholder(f"link:{p.id}") if tracked else p.url for p in posts},
               "hidden_link": placeholder("hidden_link") if tracked else None,
               "preferences_url": placeholder("preferences_url") if for_recipients else "#preferences-link",
               "open_url": placeholder("open_url") if for_recipients and config.get("OPEN_TRACKING") else None}
    return render_parts("digest", context)


class DigestFrame(NamedTuple):
    mail: ListMailFrame
    posts: tuple[tuple[int, str], ...]  # (id, URL) of each post, for the tracked links


@lru_cache(maxsize=64)
def _cached_frame(digest_id: int, owed_at: datetime, app_key: int, settings_version: str,
                  variant: int | None, post_ids: tuple[int, ...] | None) -> DigestFrame:
    digest = db.session.get(Digest, digest_id)
    # A subject test's reader gets their variant's subject; a resend links to its digest's archive page; a reader
    # who had some of the posts from an earlier digest gets the others.
    subject = digest.subject if variant is None else digest.subjects[variant]
    posts = [p for p in digest.posts if post_ids is None or p.id in post_ids]
    parts = render_digest(subject, digest.intro, posts, for_recipients=True, digest_id=digest.follows_id or digest_id)
    studio = identity.current()
    return DigestFrame(ListMailFrame(parts, studio.mail_from, studio.list_id(), studio.reply_to),
                       tuple((p.id, p.url) for p in posts))


def digest_frame(digest_id: int, owed_at: datetime, variant: int | None = None,
                 post_ids: list[int] | None = None) -> DigestFrame:
    """The frame and its post ids, rendered once per digest, subject and set of posts per worker process; only the
    per-recipient values vary. `post_ids`: the posts of a row that carries fewer than its digest (the reader
    had the others).

    `owed_at` (when the digest's rows were written, the same for all of them) is part of the key, so a
    database restored or reset under a running worker, where an id comes round again, never gets an old frame;
    so is the settings' version, so the mail after a change in the console has the new name, logo and footer.
    `variant`: the subject of a subject test the row is for (its payload's), None for the digest's own.
    """
    return _cached_frame(digest_id, owed_at, id(current_app._get_current_object()), identity.current().version,
                         variant, tuple(sorted(post_ids)) if post_ids else None)


def test_frame(payload: dict) -> Parts:
    posts = list(db.session.scalars(select(Post).where(Post.id.in_(payload["post_ids"]))))
    posts.sort(key=lambda p: payload["post_ids"].index(p.id))
    return preview(f"[Test] {payload['subject']}", payload.get("intro", ""), posts,
                   unsubscribe_url=current_app.config["BASE_URL"] + "/unsubscribe/test")


def preview(subject: str, intro: str, posts: list[Post], name: str | None = None,
            unsubscribe_url: str = "(unsubscribe link)") -> Parts:
    """The digest as one reader (by default, anyone) sees it: the console's preview, dry runs, test copies."""
    return render_digest(subject, intro, posts).fill({"greeting": greeting(name), "unsubscribe_url": unsubscribe_url})


def greeting(name: str | None) -> str:
    return f"Hi {name}," if name else "Hi,"
