"""Posts for digests: entered by hand or read from the feed, stored once each, summaries made safe for mail."""
from __future__ import annotations

import hashlib
import html
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from urllib.parse import urlsplit

import nh3
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..dialect import insert_for
from ..mail import markdown_text
from ..mail.headers import decoded
from ..mail.messages import has_control_character, without_control_characters
from ..models import Post, aware, utcnow

SUMMARY_TAGS = {"p", "a", "em", "strong", "ul", "ol", "li", "br", "blockquote"}
BLOCK_TAGS = {"p", "ul", "ol", "blockquote"}
MAX_TITLE, MAX_URL, MAX_GUID, MAX_SUMMARY = 500, 2000, 500, 100_000
EXAMPLE = "like https://blog.example.com/my-post/"


class InvalidPost(ValueError):
    """A post field the caller must fix; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class _PlainText(HTMLParser):
    """Text of sanitised HTML: blocks become paragraphs separated by a blank line, list items "- " lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.parts.append({"br": "\n", "li": "\n- "}.get(tag, "\n\n" if tag in BLOCK_TAGS else ""))

    def handle_endtag(self, tag: str) -> None:
        self.parts.append("\n\n" if tag in BLOCK_TAGS else "")

    def handle_data(self, data: str) -> None:
        # Line breaks in the source are layout, not content: only tags make lines.
        self.parts.append(re.sub(r"\s+", " ", data))


def clean_summary(html: str) -> tuple[str, str]:
    """The summary as HTML safe to put in a mail, and as readable plain text."""
    safe = nh3.clean(html, tags=SUMMARY_TAGS, attributes={"a": {"href"}, "*": set()},
                     url_schemes={"http", "https", "mailto"}).strip()
    parser = _PlainText()
    parser.feed(safe)
    parser.close()
    lines = [re.sub(r" +", " ", line).strip() for line in "".join(parser.parts).split("\n")]
    return safe, re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def written_summary(source: str) -> tuple[str, str]:
    """A summary a person typed (the console, the API), in Markdown, HTML among it allowed as before: the HTML
    sanitised as a feed's is, and plain text that reads as the source was written."""
    safe = markdown_text.to_html(source, tags=SUMMARY_TAGS, with_html=True)
    return safe, markdown_text.to_text(html.unescape(nh3.clean(source, tags=set())))


def guid_for(value: str) -> str:
    # The guid column is shorter than a URL may be; a digest still identifies an over-long one.
    return value if len(value) <= MAX_GUID else "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def check_url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidPost("url", f"The post's address (url) is missing: give it, {EXAMPLE}.")
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"[\s\0]", url):
        raise InvalidPost("url", f"The post's address (url) must start with http:// or https://, {EXAMPLE}.")
    if len(url) > MAX_URL:
        raise InvalidPost("url", f"The post's address (url) is longer than {MAX_URL} characters.")
    return url


def clean_title(value: str) -> str:
    """A title as it may become a mail's subject: RFC 2047 encoded words decoded (as a mail client would show them),
    each run of whitespace (line breaks too) one space, and the other control characters (NUL, which PostgreSQL
    text cannot hold, BEL, a text-direction override…) taken out."""
    for _ in range(3):  # an encoded word may hide another: each round opens one
        title = " ".join(without_control_characters(" ".join(decoded(value).split())).split())
        if title == value:
            return title
        value = title
    # Still more layers: take the words' markers out, so no reader decodes them into a line break.
    return title.replace("=?", "=") if has_control_character(title) else title


def hides_control_characters(value: str) -> bool:
    """A line break or control character inside an RFC 2047 encoded word: written to pass a check of the
    characters as typed, so refused where a person sends the title (the API, the console)."""
    return has_control_character(decoded(without_control_characters(value)))


def _check_title(value: object) -> str:
    if isinstance(value, str) and hides_control_characters(value):
        raise InvalidPost("title", "The post's title holds a line break or control character in an encoded word "
                                   "(=?…?=); write the title as plain text.")
    title = clean_title(value) if isinstance(value, str) else ""
    if not title:
        raise InvalidPost("title", "The post's title is missing: give it as text.")
    if len(title) > MAX_TITLE:
        raise InvalidPost("title", f"The post's title is longer than {MAX_TITLE} characters; shorten it.")
    return title


def _check_published(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
    if not isinstance(value, datetime):
        raise InvalidPost("published_at", "The publication date (published_at) must be a date, or a date and "
                                          "time: 2026-11-20, 2026-11-20 09:00 or 2026-11-20T09:00:00Z.")
    return aware(value).astimezone(timezone.utc)


def save_post(session: Session, *, guid: str, url: str, title: str, summary_html: str | None,
              summary_text: str | None, published_at: datetime | None, source: str) -> tuple[Post, str]:
    """Insert or update the post with this guid (None keeps what is stored); returns it and what happened."""
    post, adopted = session.scalar(select(Post).where(Post.guid == guid)), False
    if post is None and source == "feed":
        # A post entered by hand that the feed now carries becomes the feed's, rather than a second copy.
        post = session.scalar(select(Post).where(Post.url == url, Post.source == "manual").limit(1))
        if post is not None:
            post.guid, post.source, adopted = guid, "feed", True
    fields = {k: v for k, v in {"url": url, "title": title, "summary_html": summary_html,
                                "summary_text": summary_text, "published_at": published_at}.items() if v is not None}
    if post is not None:
        changed = {k: v for k, v in fields.items() if not _same(getattr(post, k), v)}
        for key, value in changed.items():
            setattr(post, key, value)
        return post, "updated" if changed or adopted else "unchanged"
    insert = insert_for(session)
    now = utcnow()
    stmt = insert(Post).values(guid=guid, source=source, created_at=now, updated_at=now, **fields)
    # Two writers adding one post at once meet in one row: the later one updates it.
    stmt = stmt.on_conflict_do_update(index_elements=["guid"],
                                      set_={**{k: stmt.excluded[k] for k in fields}, "updated_at": now})
    return session.scalars(stmt.returning(Post), execution_options={"populate_existing": True}).one(), "new"


def _same(old: object, new: object) -> bool:
    if isinstance(old, datetime) and isinstance(new, datetime):
        return aware(old) == aware(new)
    return old == new


def add_post(session: Session, title: object, url: object, summary: object = None,
             published_at: object = None) -> Post:
    """Store a post entered by hand (guid: its url); a url already stored is updated, keeping what is left out."""
    title, url, when = _check_title(title), check_url(url), _check_published(published_at)
    if summary is not None and not isinstance(summary, str):
        raise InvalidPost("summary", "The post's summary (summary) must be text (Markdown, HTML allowed) or left out.")
    if summary and len(summary) > MAX_SUMMARY:
        raise InvalidPost("summary", f"The post's summary is longer than {MAX_SUMMARY} characters; shorten it.")
    summary_html, summary_text = written_summary(summary) if summary is not None else (None, None)
    existing = session.scalar(select(Post.guid).where(Post.url == url).limit(1))
    return save_post(session, guid=existing or guid_for(url), url=url, title=title, summary_html=summary_html,
                     summary_text=summary_text, published_at=when, source="manual")[0]


def list_posts(session: Session, limit: int, before_id: int | None = None) -> list[Post]:
    """Newest first by id; pass the last id of a page as `before_id` to get the next."""
    query = select(Post).order_by(Post.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Post.id < before_id)
    return list(session.scalars(query))
