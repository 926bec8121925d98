"""The blog's feed, served by a real HTTP server on 127.0.0.1: conditional GETs, upserts, edits and failures."""
from __future__ import annotations

import logging
import socket
import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import FeedState, Post
from mailer.posts import feeds
from mailer.posts.feeds import FeedError, fetch_feed
from mailer.posts.store import add_post, aware, clean_summary
from tests.feed_server import FIXTURES, closed_port_url

SEED_TITLE = "Career Q&A: Can You Keep in Touch with an Employer You Turned Down?"
SEED_URL = "https://blog.example.com/2026/11/20/career-qa-keep-in-touch-employer-turned-down/"


@pytest.fixture
def parses(monkeypatch) -> list[int]:
    """Counts feedparser runs, to prove a 304 parses nothing."""
    calls: list[int] = []
    real = feeds.feedparser.parse

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(feeds.feedparser, "parse", counting)
    return calls


def post_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Post))


def seed_post() -> Post:
    return db.session.scalars(select(Post).where(Post.url.like("%career-qa%"))).one()


def test_rss_posts_are_stored_with_plain_titles_and_safe_summaries(app, feed_server):
    feed_server.serve("wordpress-rss2.xml")
    result = fetch_feed(db.session, feed_server.url)
    assert (result.new, result.updated, result.unchanged, result.not_modified) == (3, 0, 0, False)
    assert feed_server.requests[0]["User-Agent"].startswith("mailer/")
    post = seed_post()
    assert post.title == SEED_TITLE and post.guid == "https://blog.example.com/?p=1042" and post.source == "feed"
    assert post.url == SEED_URL
    assert aware(post.published_at) == datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
    for bad in ("<script", "document.cookie", "onclick", "steal()", "track()"):
        assert bad not in post.summary_html
    assert f'<a href="{SEED_URL}"' in post.summary_html
    assert post.summary_text.startswith("Q: I had two internship offers")
    assert "\n\nA: Your question is a bit tricky & the truth" in post.summary_text
    assert "<" not in post.summary_text and "&amp;" not in post.summary_text
    # Oldest first, so that newest-first by id is newest-first by date.
    titles = list(db.session.scalars(select(Post.title).order_by(Post.id.desc())))
    assert titles[0] == SEED_TITLE and titles[-1] == "Should You Put “Open to Work” on Your Profile?"
    state = db.session.get(FeedState, feed_server.url)
    assert state.etag == feed_server.etag and state.last_error is None and state.fetched_at is not None


@pytest.mark.parametrize("fixture, guid", [("wordpress-atom.xml", "https://blog.example.com/?p=1042"),
                                           ("ghost-rss.xml", "6740b7c2e4b0a10001a3f2c1")])
def test_atom_and_ghost_feeds(app, feed_server, fixture, guid):
    feed_server.serve(fixture, content_type="application/atom+xml")
    assert fetch_feed(db.session, feed_server.url).new == 2
    post = db.session.scalars(select(Post).where(Post.guid == guid)).one()
    assert post.title == SEED_TITLE
    assert "script" not in post.summary_html and "onclick" not in post.summary_html and "alert" not in post.summary_html
    assert post.summary_text.startswith("Q: I had two internship offers for this summer.\n\nA: Your question")
    assert aware(post.published_at) == datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("validators, header", [("etag", "If-None-Match"), ("last-modified", "If-Modified-Since")])
def test_second_fetch_is_conditional_and_parses_nothing(app, feed_server, parses, validators, header):
    feed_server.serve("wordpress-rss2.xml", validators=validators)
    fetch_feed(db.session, feed_server.url)
    first_fetched = aware(db.session.get(FeedState, feed_server.url).fetched_at)
    assert len(parses) == 1

    result = fetch_feed(db.session, feed_server.url)
    assert result.not_modified and result.describe() == f"fetched {feed_server.url}: not modified"
    assert feed_server.answers == [200, 304]
    assert header in feed_server.requests[1]
    assert len(parses) == 1, "a 304 must not be parsed"
    assert post_count() == 3
    assert aware(db.session.get(FeedState, feed_server.url).fetched_at) > first_fetched


def test_refetch_without_validators_never_duplicates(app, feed_server):
    feed_server.serve("wordpress-rss2.xml", validators="none")
    fetch_feed(db.session, feed_server.url)
    result = fetch_feed(db.session, feed_server.url)
    assert (result.new, result.updated, result.unchanged) == (0, 0, 3)
    assert feed_server.answers == [200, 200] and post_count() == 3


def test_an_edited_post_is_updated_in_place(app, feed_server):
    feed_server.serve("wordpress-rss2.xml")
    fetch_feed(db.session, feed_server.url)
    before = seed_post()
    post_id, created = before.id, before.created_at

    edited = (FIXTURES / "wordpress-rss2.xml").read_text()
    edited = edited.replace("Career Q&amp;A: Can You Keep", "Career Q&amp;A: Should You Keep")
    edited = edited.replace("the truth is that the recruiter", "the recruiter")
    edited = edited.replace("<link>" + SEED_URL, "<link>" + SEED_URL.replace("career-qa", "career-q-and-a"))
    feed_server.serve(body=edited.encode())
    result = fetch_feed(db.session, feed_server.url)

    assert (result.new, result.updated, result.unchanged) == (0, 1, 2)
    post = db.session.get(Post, post_id, populate_existing=True)
    assert post.title == "Career Q&A: Should You Keep in Touch with an Employer You Turned Down?"
    assert "career-q-and-a" in post.url and "the truth" not in post.summary_text
    assert post.created_at == created and post_count() == 3


def test_a_post_added_by_hand_is_taken_over_by_the_feed(app, feed_server):
    add_post(db.session, "Keep in touch?", SEED_URL, "<p>Draft</p>")
    db.session.commit()
    feed_server.serve("wordpress-rss2.xml")
    result = fetch_feed(db.session, feed_server.url)
    assert (result.new, result.updated) == (2, 1) and post_count() == 3
    post = seed_post()
    assert (post.source, post.guid, post.title) == ("feed", "https://blog.example.com/?p=1042", SEED_TITLE)


def assert_failed(url: str, caplog, expected: str) -> FeedState:
    caplog.set_level(logging.INFO, logger="mailer.posts.feeds")
    with pytest.raises(FeedError) as failure:
        fetch_feed(db.session, url, timeout=2)
    message = str(failure.value)
    assert expected in message and url in message and "will retry at the next poll" in message
    state = db.session.get(FeedState, url, populate_existing=True)
    assert state.last_error == message
    warnings = [r for r in caplog.records if r.name == "mailer.posts.feeds" and r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [message]
    return state


def test_feed_down_is_a_feed_error_and_writes_no_post(app, caplog):
    url = closed_port_url()
    assert_failed(url, caplog, "could not be reached")
    assert post_count() == 0


def test_server_error_keeps_what_was_stored(app, feed_server, caplog):
    feed_server.serve("wordpress-rss2.xml")
    fetch_feed(db.session, feed_server.url)
    etag = feed_server.etag
    feed_server.serve("ghost-rss.xml", status=500)
    state = assert_failed(feed_server.url, caplog, "answered 500; is the blog up?")
    assert state.etag == etag and post_count() == 3

    feed_server.serve("wordpress-rss2.xml")  # the blog is back: the error is cleared
    assert fetch_feed(db.session, feed_server.url).not_modified
    assert db.session.get(FeedState, feed_server.url, populate_existing=True).last_error is None


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken</title><item><title>Half',
    b"<!doctype html><html><head><title>Blog</title></head><body><p>Welcome</p></body></html>",
])
def test_malformed_feed_is_a_feed_error_and_writes_nothing(app, feed_server, caplog, body):
    feed_server.serve(body=body, content_type="text/html")
    state = assert_failed(feed_server.url, caplog, "is not valid RSS or Atom")
    assert post_count() == 0 and state.etag is None, "a bad document's validator would hide the fix behind a 304"


def test_a_feed_that_never_answers_times_out(app, caplog):
    with socket.socket() as sock:  # listening but never accepting: connect succeeds, the answer never comes
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/feed/"
        caplog.set_level(logging.INFO, logger="mailer.posts.feeds")
        with pytest.raises(FeedError, match="did not answer within 0.3 s"):
            fetch_feed(db.session, url, timeout=0.3)
    assert post_count() == 0


def test_two_fetches_at_once_store_each_post_once(app, feed_server):
    feed_server.serve("wordpress-rss2.xml", validators="none")
    start, outcomes = threading.Barrier(2), []

    def fetch() -> None:
        with app.app_context():
            start.wait()
            outcomes.append(fetch_feed(db.session, feed_server.url))
            db.session.remove()

    threads = [threading.Thread(target=fetch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 2 and post_count() == 3
    assert sorted(r.new for r in outcomes) == [0, 3]


def test_summary_text_is_readable():
    html, text = clean_summary('<div><p>One &amp;\n two</p><ol><li>a</li><li>b</li></ol>'
                               '<blockquote>Quote</blockquote>Line<br/>break&nbsp;here <img src=x onerror=y></div>')
    assert html == ('<p>One &amp;\n two</p><ol><li>a</li><li>b</li></ol><blockquote>Quote</blockquote>'
                    'Line<br>break&nbsp;here')
    assert text == "One & two\n\n- a\n- b\n\nQuote\n\nLine\nbreak here"


def test_a_feed_url_that_is_not_http_is_refused(app):
    with pytest.raises(FeedError, match="is not an http\\(s\\) address: set it to the blog's feed"):
        fetch_feed(db.session, "file:///etc/passwd")
    assert db.session.get(FeedState, "file:///etc/passwd").last_error.startswith("FEED_URL 'file:///etc/passwd'")


def test_the_first_fetch_is_the_back_catalogue_and_later_posts_are_news(app, feed_server):
    from mailer.posts import digests

    feed_server.serve("wordpress-rss2.xml")
    fetch_feed(db.session, feed_server.url)
    with pytest.raises(digests.NothingNew):
        digests.choose_posts(db.session)  # subscribers did not sign up for the blog's old posts
    assert [p.title for p in digests.choose_posts(db.session, [seed_post().id])] == [seed_post().title]

    newer = (FIXTURES / "wordpress-rss2.xml").read_text().replace(
        "<item>", "<item><title>A brand new answer</title><link>https://blog.example.com/new/</link>"
                  "<guid>https://blog.example.com/?p=999</guid><pubDate>Fri, 20 Nov 2026 10:00:00 +0000</pubDate>"
                  "</item><item>", 1)
    feed_server.serve(body=newer.encode())
    assert fetch_feed(db.session, feed_server.url).new == 1
    assert [p.title for p in digests.choose_posts(db.session)] == ["A brand new answer"]
