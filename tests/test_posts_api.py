"""/api/v1/posts, /api/v1/feed/fetch and `mailer feed fetch`."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.api_tokens import create_token
from mailer.extensions import db
from mailer.models import Post
from tests.feed_server import closed_port_url
from tests.test_feeds import SEED_TITLE

POST = {"title": "Career Q&A: Can You Keep in Touch with an Employer You Turned Down?",
        "url": "https://blog.example.com/career-qa/", "summary": '<p onclick="x()">Q: I had two offers.</p><script>x</script>',
        "published_at": "2026-11-20T10:00:00+01:00"}


@pytest.fixture
def auth(app) -> dict[str, str]:
    token = create_token(db.session, "t")
    db.session.commit()
    return {"Authorization": f"Bearer {token}"}


def post_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Post))


@pytest.mark.parametrize("method, path", [("get", "/api/v1/posts"), ("post", "/api/v1/posts"),
                                          ("post", "/api/v1/feed/fetch")])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer mlr_not-a-token"}, {"Authorization": "Basic eDp5"}])
def test_a_token_is_required(client, method, path, headers):
    response = getattr(client, method)(path, json=POST, headers=headers)
    assert response.status_code == 401 and "api-token create" in response.json["error"]
    assert post_count() == 0


def test_add_a_post(client, auth):
    response = client.post("/api/v1/posts", json=POST, headers=auth)
    assert response.status_code == 201
    body = response.json
    assert body == {"id": body["id"], "title": POST["title"], "url": POST["url"], "summary": "<p>Q: I had two offers.</p>",
                    "published_at": "2026-11-20T09:00:00Z", "source": "manual"}
    post = db.session.get(Post, body["id"])
    assert post.guid == POST["url"] and post.summary_text == "Q: I had two offers."


def test_adding_the_same_url_updates_it(client, auth):
    first = client.post("/api/v1/posts", json=POST, headers=auth).json
    again = client.post("/api/v1/posts", json={"title": "  New\ntitle ", "url": POST["url"]}, headers=auth)
    assert again.status_code == 201 and again.json["id"] == first["id"]
    assert again.json["title"] == "New title"
    assert again.json["summary"] == "<p>Q: I had two offers.</p>", "left out: the summary stays"
    assert again.json["published_at"] == "2026-11-20T09:00:00Z", "left out: the date stays"
    cleared = client.post("/api/v1/posts", json={"title": "New title", "url": POST["url"], "summary": ""}, headers=auth)
    assert cleared.json["summary"] == "" and db.session.get(Post, first["id"]).summary_text == ""
    assert post_count() == 1


@pytest.mark.parametrize("published_at, stored", [("2026-11-20", "2026-11-20T00:00:00Z"),
                                                  ("2026-11-20T09:00:00Z", "2026-11-20T09:00:00Z"),
                                                  ("2026-11-20T04:00:00-05:00", "2026-11-20T09:00:00Z"),
                                                  (None, None)])
def test_published_at_is_iso_8601(client, auth, published_at, stored):
    response = client.post("/api/v1/posts", json={**POST, "published_at": published_at}, headers=auth)
    assert response.status_code == 201 and response.json["published_at"] == stored


@pytest.mark.parametrize("change, field", [
    ({"title": None}, "title"), ({"title": "   "}, "title"), ({"title": "x" * 501}, "title"), ({"title": 7}, "title"),
    ({"url": None}, "url"), ({"url": "javascript:alert(1)"}, "url"), ({"url": "ftp://blog.example.com/x"}, "url"),
    ({"url": "https://blog.example.com/" + "x" * 2000}, "url"), ({"url": "https:///nohost"}, "url"), ({"url": "http://[broken/"}, "url"),
    ({"summary": ["<p>"]}, "summary"), ({"published_at": "20 November 2026"}, "published_at"),
    ({"published_at": 2026}, "published_at"), ({"published_at": "2026-13-01"}, "published_at"),
])
def test_bad_fields_are_422_naming_the_field(client, auth, change, field):
    response = client.post("/api/v1/posts", json={**POST, **change}, headers=auth)
    assert response.status_code == 422
    assert response.json["field"] == field and field in response.json["error"]
    assert post_count() == 0


@pytest.mark.parametrize("kwargs, field", [({"data": "title=x", "content_type": "application/x-www-form-urlencoded"}, "body"),
                                           ({"json": ["a list"]}, "body"), ({"json": {**POST, "summery": "x"}}, "summery")])
def test_a_body_that_is_not_a_post_is_400(client, auth, kwargs, field):
    response = client.post("/api/v1/posts", headers=auth, **kwargs)
    assert response.status_code == 400 and response.json["field"] == field and response.json["error"]
    assert post_count() == 0


def test_list_newest_first_with_keyset_pages(client, auth):
    ids = [client.post("/api/v1/posts", json={**POST, "url": f"https://blog.example.com/{n}/", "title": f"Post {n}"},
                       headers=auth).json["id"] for n in range(5)]
    page = client.get("/api/v1/posts?limit=2", headers=auth).json
    assert [p["title"] for p in page["posts"]] == ["Post 4", "Post 3"] and page["next"] == ids[3]
    assert set(page["posts"][0]) == {"id", "title", "url", "summary", "published_at", "source"}
    seen = [p["id"] for p in page["posts"]]
    while page["next"]:
        page = client.get(f"/api/v1/posts?limit=2&before={page['next']}", headers=auth).json
        seen += [p["id"] for p in page["posts"]]
    assert seen == ids[::-1]
    assert client.get("/api/v1/posts?limit=9999", headers=auth).json == {
        "posts": client.get("/api/v1/posts", headers=auth).json["posts"], "next": None}


@pytest.mark.parametrize("query, field", [("limit=abc", "limit"), ("limit=0", "limit"), ("limit=-1", "limit"),
                                          ("before=1.5", "before"), ("before=99999999999999999999999", "before")])
def test_bad_list_parameters_are_400(client, auth, query, field):
    response = client.get(f"/api/v1/posts?{query}", headers=auth)
    assert response.status_code == 400 and response.json["field"] == field


def test_feed_fetch_needs_feed_url(app, client, auth):
    app.config["FEED_URL"] = None
    response = client.post("/api/v1/feed/fetch", headers=auth)
    assert response.status_code == 409
    assert response.json["error"].startswith("FEED_URL is not set: set it to the blog's feed")


def test_feed_fetch(app, client, auth, feed_server):  # noqa: F811
    feed_server.serve("wordpress-rss2.xml")
    app.config["FEED_URL"] = feed_server.url
    response = client.post("/api/v1/feed/fetch", headers=auth)
    assert response.status_code == 200
    assert response.json == {"url": feed_server.url, "new": 3, "updated": 0, "unchanged": 0, "not_modified": False}
    assert client.post("/api/v1/feed/fetch", headers=auth).json["not_modified"] is True
    titles = [p["title"] for p in client.get("/api/v1/posts", headers=auth).json["posts"]]
    assert titles[0] == SEED_TITLE and len(titles) == 3


def test_feed_fetch_of_a_down_feed_is_502(app, client, auth, feed_server):  # noqa: F811
    feed_server.serve("wordpress-rss2.xml", status=503)
    app.config["FEED_URL"] = feed_server.url
    response = client.post("/api/v1/feed/fetch", headers=auth)
    assert response.status_code == 502
    assert response.json["error"] == (f"the feed at {feed_server.url} answered 503; is the blog up? "
                                      "will retry at the next poll")
    assert post_count() == 0


def test_cli_feed_fetch(app, runner, feed_server):  # noqa: F811
    feed_server.serve("ghost-rss.xml")
    app.config["FEED_URL"] = feed_server.url
    result = runner.invoke(args=["feed", "fetch"])
    assert result.exit_code == 0 and result.stdout == f"fetched {feed_server.url}: 2 new, 0 updated, 0 unchanged\n"
    result = runner.invoke(args=["feed", "fetch"])
    assert result.exit_code == 0 and result.stdout == f"fetched {feed_server.url}: not modified\n"


def test_cli_feed_fetch_failures(app, runner):
    app.config["FEED_URL"] = None
    result = runner.invoke(args=["feed", "fetch"])
    assert result.exit_code == 1 and "FEED_URL is not set" in result.stderr and result.stdout == ""
    app.config["FEED_URL"] = url = closed_port_url()
    result = runner.invoke(args=["feed", "fetch"])
    assert result.exit_code == 1 and f"the feed at {url} could not be reached" in result.stderr


@pytest.mark.parametrize("body", [{"dry_run": True, "subject": "two\nlines"}, {"dry_run": True, "post_ids": []},
                                  {"subject": "a\u2028b"}, {"test_to": "me@example.com", "subject": "a\rb"}])
def test_a_digest_request_with_a_bad_subject_or_no_post_is_a_422_that_says_why(client, auth, body):
    assert client.post("/api/v1/posts", json=POST, headers=auth).status_code == 201
    response = client.post("/api/v1/digests", json=body, headers=auth)
    assert response.status_code == 422
    assert "subject must be one line" in response.json["error"] or "tick at least one post" in response.json["error"]


def test_control_characters_leave_a_post_title_which_becomes_a_subject(client, auth):
    body = {**POST, "title": "Career Q&A:\x07 keep\x00 in touch\u202e\x9b", "url": "https://blog.example.com/bel/"}
    assert client.post("/api/v1/posts", json=body, headers=auth).status_code == 201
    assert db.session.scalar(select(Post.title).where(Post.url == body["url"])) == "Career Q&A: keep in touch"


@pytest.mark.parametrize(("raw", "stored"), [("Two\nlines\u2028and\x85more", "Two lines and more"),
                                             ("a \x07 b\u202e", "a b"), ("\u202e\x07", None), ("\x00 \t", None)])
def test_a_title_is_one_line_without_control_characters_and_never_empty(client, auth, raw, stored):
    response = client.post("/api/v1/posts", json={**POST, "title": raw}, headers=auth)
    if stored is None:
        assert response.status_code == 422 and response.json["field"] == "title" and post_count() == 0
    else:
        assert response.status_code == 201 and db.session.scalar(select(Post.title)) == stored


def test_a_feed_title_loses_its_control_characters_too():
    from mailer.posts.feeds import _parse

    body = ('<rss version="2.0"><channel><item><title>Hello \u202eevil&#x7;\n x</title>'
            '<link>https://blog.example.com/p/</link></item></channel></rss>').encode()
    [entry] = _parse("https://blog.example.com/feed/", body, {})
    assert entry["title"] == "Hello evil x"
