"""The blog's feed: a conditional GET, then each entry stored once as a Post."""
from __future__ import annotations

import calendar
import http.client
import io
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone

import feedparser
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ..dialect import insert_for
from ..models import FeedState, Post, utcnow
from .store import InvalidPost, check_url, clean_summary, clean_title, guid_for, save_post

log = logging.getLogger(__name__)
USER_AGENT = "mailer/0.1 (self-hosted newsletter; polls this feed for new posts)"
ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
MAX_BYTES = 10 * 1024 * 1024
RETRY = "will retry at the next poll"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class FeedError(RuntimeError):
    """The feed could not be read; the message says why and what to do."""


@dataclass
class FeedResult:
    url: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    not_modified: bool = False

    def describe(self) -> str:
        if self.not_modified:
            return f"fetched {self.url}: not modified"
        return f"fetched {self.url}: {self.new} new, {self.updated} updated, {self.unchanged} unchanged"


def fetch_feed(session: Session, url: str, timeout: float = 10) -> FeedResult:
    """Fetch the feed at `url` and store its posts; commits. FeedError (also kept in FeedState) if it cannot."""
    state = session.get(FeedState, url)
    etag, modified = (state.etag, state.modified) if state else (None, None)
    session.commit()  # hold no transaction open across the download
    try:
        download = _download(url, etag, modified, timeout)
        if download is None:
            _record(session, url, etag, modified)
            session.commit()
            return FeedResult(url, not_modified=True)
        body, headers = download
        posts = _parse(url, body, headers)
        # First write of the transaction: it takes the lock, so two fetches of one feed store one after the other.
        _record(session, url, headers.get("etag"), headers.get("last-modified"))
        result = FeedResult(url)
        first_fetch = not session.scalar(select(exists().where(Post.source == "feed")))
        for values in posts:
            post, outcome = save_post(session, **values, source="feed")
            setattr(result, outcome, getattr(result, outcome) + 1)
            if first_fetch:
                post.announce = False  # the blog's back catalogue: subscribers did not sign up for old posts
        session.commit()
    except FeedError as exc:
        session.rollback()
        _record(session, url, etag, modified, error=str(exc))
        session.commit()
        log.warning("%s", exc)
        raise
    except BaseException:
        session.rollback()
        raise
    log.info("%s", result.describe())
    return result


def _record(session: Session, url: str, etag: str | None, modified: str | None, error: str | None = None) -> None:
    insert = insert_for(session)
    values = {"url": url, "fetched_at": utcnow(), "last_error": error[:500] if error else None,
              # A validator too long to store only costs the next 304, never correctness.
              "etag": etag if etag and len(etag) <= 500 else None,
              "modified": modified if modified and len(modified) <= 100 else None}
    stmt = insert(FeedState).values(**values)
    session.execute(stmt.on_conflict_do_update(index_elements=["url"], set_={k: stmt.excluded[k] for k in values}))


def _download(url: str, etag: str | None, modified: str | None, timeout: float) -> tuple[bytes, dict] | None:
    """The feed's bytes and (lower-cased) headers, or None when it has not changed since the last fetch."""
    try:
        check_url(url)
    except InvalidPost:
        raise FeedError(f"FEED_URL {url!r} is not an http(s) address: set it to the blog's feed, "
                        "e.g. https://blog.example.com/feed/") from None
    headers = {"User-Agent": USER_AGENT, "Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            body = response.read(MAX_BYTES + 1)
            found = {k.lower(): v for k, v in response.headers.items()}
            found.setdefault("content-location", response.geturl())  # the base for relative links
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 304:
            return None
        hint = "is the blog up?" if exc.code >= 500 else "is FEED_URL right and the feed public?"
        raise FeedError(f"the feed at {url} answered {exc.code}; {hint} {RETRY}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc  # URLError wraps the cause
        if isinstance(reason, TimeoutError):
            raise FeedError(f"the feed at {url} did not answer within {timeout:g} s; is the blog up? {RETRY}") from None
        raise FeedError(f"the feed at {url} could not be reached ({reason}); is the blog up and FEED_URL right? "
                        f"{RETRY}") from None
    if len(body) > MAX_BYTES:
        raise FeedError(f"the feed at {url} is larger than {MAX_BYTES // 2**20} MB; is FEED_URL the feed? {RETRY}")
    return body, found


def _parse(url: str, body: bytes, headers: dict) -> list[dict]:
    """Each usable entry as save_post's arguments, oldest first so that ids follow publication."""
    # A stream, never bytes or str: feedparser would take those for a path or URL to open.
    feed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    posts = []
    for entry in feed.entries:
        try:
            link = check_url(entry.get("link"))
        except InvalidPost:
            log.info("feed %s: skipped entry %r, it has no http(s) link", url, entry.get("id") or entry.get("title"))
            continue
        title = entry.get("title") or link
        if entry.get("title_detail", {}).get("type") in ("text/html", "application/xhtml+xml"):
            title = clean_summary(title)[1]  # WordPress's Atom titles are HTML: "Q&#038;A"
        summary = entry.get("summary") or (entry.content[0].value if entry.get("content") else "")
        summary_html, summary_text = clean_summary(summary)
        posts.append({"guid": guid_for(entry.get("id") or link), "url": link,
                      "title": clean_title(title)[:500] or link[:500], "summary_html": summary_html,
                      "summary_text": summary_text, "published_at": _published(entry)})
    # A valid but empty feed is a blog without posts; a broken one with nothing usable in it is an error.
    if not posts and (feed.bozo or not feed.version):
        reason = feed.get("bozo_exception") or "no RSS or Atom document"
        raise FeedError(f"the feed at {url} is not valid RSS or Atom ({reason}); check that FEED_URL is the blog's "
                        f"feed (e.g. https://blog.example.com/feed/); {RETRY}")
    return sorted(posts, key=lambda post: post["published_at"] or EPOCH)


def _published(entry) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")  # struct_time in UTC
    return datetime.fromtimestamp(calendar.timegm(parsed), timezone.utc) if parsed else None
