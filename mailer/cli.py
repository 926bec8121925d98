"""The `mailer` command: Flask's CLI for the app, plus the project's own commands."""
from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup

from .config import ConfigError


def _create_app(*_args) -> Flask:
    from . import create_app

    try:
        return create_app()
    except ConfigError as exc:
        click.echo(f"Configuration error: {exc}", err=True)
        sys.exit(2)


def main() -> None:
    FlaskGroup(create_app=_create_app, add_version_option=False, load_dotenv=False,
               help="Newsletter and lead-magnet mailer. `mailer dev` runs everything locally.")(prog_name="mailer")


def register(app: Flask) -> None:
    from .admin.cli import admin_cli
    from .bounces.cli import bounces_cli
    from .dev import dev
    from .digests_cli import digest_cli
    from .dns_records import dns_records
    from .feeds_cli import feed
    from .subscribers_cli import subscribers

    app.cli.add_command(dev)
    app.cli.add_command(digest_cli)
    app.cli.add_command(embed)
    app.cli.add_command(api_token)
    app.cli.add_command(feed)
    app.cli.add_command(subscribers)
    app.cli.add_command(admin_cli)
    app.cli.add_command(bounces_cli)
    app.cli.add_command(dns_records)


@click.group("api-token")
def api_token() -> None:
    """Bearer tokens for /api/v1."""


@api_token.command("create")
@click.argument("name")
def create_api_token(name: str) -> None:
    """Create a token called NAME and print it (it is shown only this once)."""
    from .api import create_token
    from .extensions import db

    token = create_token(db.session, name)
    db.session.commit()
    click.echo(token)


@click.command("embed")
def embed() -> None:
    """Print the three ways to put the signup form on the blog."""
    from .embed_snippets import snippets

    for title, code in snippets(current_app.config["BASE_URL"]).items():
        click.echo(f"--- {title} ---\n{code}\n")


if __name__ == "__main__":
    main()
