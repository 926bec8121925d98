"""`mailer embed`: the three ways to put the signup form on the blog."""
from __future__ import annotations

import os

import click
from flask import current_app
from flask.cli import with_appcontext

from ..web.embed_snippets import snippets
from .dev import serving_address


@click.command("embed")
@with_appcontext
def embed() -> None:
    """Print the three ways to put the signup form on the blog (at the address `mailer dev` serves on, if it runs
    and BASE_URL is not set)."""
    base = current_app.config["BASE_URL"] if os.environ.get("BASE_URL") else serving_address() or current_app.config["BASE_URL"]
    for title, code in snippets(base).items():
        click.echo(f"--- {title} ---\n{code}\n")
