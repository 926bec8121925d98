"""`mailer embed`: the three ways to put the signup form on the blog."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from ..web.embed_snippets import snippets


@click.command("embed")
@with_appcontext
def embed() -> None:
    """Print the three ways to put the signup form on the blog."""
    for title, code in snippets(current_app.config["BASE_URL"]).items():
        click.echo(f"--- {title} ---\n{code}\n")
