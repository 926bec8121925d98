"""`mailer feed fetch`: read the blog's feed now, as beat does on its schedule."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext


@click.group("feed")
def feed() -> None:
    """The blog's feed (FEED_URL), where digest posts come from."""


@feed.command("fetch")
@with_appcontext
def fetch() -> None:
    """Fetch FEED_URL now and store its new and edited posts."""
    from ..extensions import db
    from ..posts.feeds import FeedError, fetch_feed

    url = current_app.config.get("FEED_URL")
    if not url:
        click.echo("FEED_URL is not set: set it to the blog's feed, e.g. FEED_URL=https://blog.example.com/feed/", err=True)
        raise SystemExit(1)
    try:
        result = fetch_feed(db.session, url)
    except FeedError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from None
    click.echo(result.describe())
