"""Posts: the list (newest first, keyset pages), fetching the feed now, adding and editing a post by hand."""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from ..extensions import db
from ..models import FeedState, Post
from ..posts.feeds import FeedError, fetch_feed
from ..posts.store import InvalidPost, add_post, check_url, list_posts
from ..web.ids import row_id
from . import bp
from .forms import ActionForm, PostForm

PAGE = 50


@bp.get("/posts")
def posts():
    before = request.args.get("before", type=row_id)
    rows = list_posts(db.session, PAGE + 1, before)
    feed_url = current_app.config.get("FEED_URL")
    state = db.session.get(FeedState, feed_url) if feed_url else None
    return render_template("admin/posts.html", posts=rows[:PAGE], next_before=rows[PAGE - 1].id if len(rows) > PAGE else None,
                           feed_url=feed_url, feed=state, form=ActionForm())


@bp.post("/posts/fetch")
def fetch_now():
    url = current_app.config.get("FEED_URL")
    if not url:
        flash("No feed is configured: set FEED_URL to the blog's feed (e.g. https://blog.example.com/feed/) "
              "and restart, or add posts by hand.", "error")
    else:
        try:
            flash(f"Feed {fetch_feed(db.session, url).describe().removeprefix('fetched ')}.", "ok")
        except FeedError as exc:
            flash(str(exc), "error")
    return redirect(url_for("admin.digests_page" if request.form.get("back") == "digests" else "admin.posts"))


@bp.route("/posts/new", methods=["GET", "POST"])
def post_new():
    return _edit(None)


@bp.route("/posts/<int:post_id>", methods=["GET", "POST"])
def post_edit(post_id: int):
    return _edit(db.session.get(Post, post_id) or abort(404))


def _edit(post: Post | None):
    form = PostForm(obj=post, summary=post.summary_html if post else None,
                    published_at=post.published_at.strftime("%Y-%m-%dT%H:%M") if post and post.published_at else "")
    if form.validate_on_submit():
        try:
            if post is not None and form.url.data.strip() != post.url:
                post.url = check_url(form.url.data)  # add_post then finds this post by its new address
                db.session.flush()
            saved = add_post(db.session, form.title.data, form.url.data, form.summary.data or "",
                             form.published_at.data or None)
        except InvalidPost as exc:
            db.session.rollback()
            getattr(form, {"summary": "summary"}.get(exc.field, exc.field), form.title).errors.append(str(exc))
        else:
            db.session.commit()
            flash(f"Saved “{saved.title}”.", "ok")
            return redirect(url_for("admin.posts"))
    return render_template("admin/post_form.html", form=form, post=post), 400 if form.errors else 200
