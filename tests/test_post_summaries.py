"""Post summaries typed by a person are Markdown (the console and the API); the console's date picker."""
from __future__ import annotations

import html

from sqlalchemy import select

from mailer.api_tokens import create_token
from mailer.extensions import db
from mailer.models import Post
from mailer.posts.store import clean_summary
from tests.admin_helpers import token

MARKDOWN = ("Q: I had **two offers**. Read [the answer](https://blog.example.com/a/).\n\n"
            "- keep in touch\n- say thanks\n\n[bad](javascript:alert(1)) <script>x()</script>")


def check_markdown_post(post: Post) -> None:
    assert "<strong>two offers</strong>" in post.summary_html
    assert '<a href="https://blog.example.com/a/"' in post.summary_html and "<li>keep in touch</li>" in post.summary_html
    assert "href=\"javascript" not in post.summary_html and "<script" not in post.summary_html
    assert post.summary_text.startswith("Q: I had two offers. Read the answer (https://blog.example.com/a/).")
    assert "- keep in touch\n- say thanks" in post.summary_text and "**" not in post.summary_text
    assert "x()" not in post.summary_text


def test_a_summary_sent_through_the_api_is_markdown(client, app):
    auth = {"Authorization": f"Bearer {create_token(db.session, 't')}"}
    db.session.commit()
    answer = client.post("/api/v1/posts", json={"title": "Offers", "url": "https://blog.example.com/a/",
                                                "summary": MARKDOWN}, headers=auth)
    assert answer.status_code == 201 and "<strong>two offers</strong>" in answer.json["summary"]
    check_markdown_post(db.session.scalar(select(Post)))
    html_summary = client.post("/api/v1/posts", json={"title": "Old style", "url": "https://blog.example.com/b/",
                                                      "summary": "<p>Q: <em>HTML</em> still works.</p>"}, headers=auth)
    assert html_summary.json["summary"] == "<p>Q: <em>HTML</em> still works.</p>"


def test_a_summary_typed_in_the_console_is_markdown_and_the_date_is_picked(admin):
    page = admin.get("/admin/posts/new").text
    assert 'type="datetime-local"' in page and 'name="published_at"' in page
    form = {"csrf_token": token(admin, "/admin/posts/new"), "title": "Offers", "url": "https://blog.example.com/a/",
            "summary": MARKDOWN, "published_at": "2026-11-20T09:30"}
    assert admin.post("/admin/posts/new", data=form).status_code == 302
    post = db.session.scalar(select(Post))
    check_markdown_post(post)
    assert post.published_at.strftime("%Y-%m-%d %H:%M") == "2026-11-20 09:30"
    bad = admin.post("/admin/posts/new", data={**form, "url": "https://blog.example.com/c/", "published_at": "20/11/2026"})
    assert bad.status_code == 400 and "must be a date" in html.unescape(bad.text)
    assert db.session.query(Post).count() == 1


def test_a_feeds_html_is_kept_and_sanitised_as_before():
    assert clean_summary('<p onclick="x()">Two **offers**</p><script>x</script>') == (
        "<p>Two **offers**</p>", "Two **offers**")
