"""`mailer api-token create NAME`: bearer tokens for /api/v1."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..api_tokens import create_token
from ..extensions import db


@click.group("api-token")
def api_token() -> None:
    """Bearer tokens for /api/v1."""


@api_token.command("create")
@click.argument("name")
@with_appcontext
def create_api_token(name: str) -> None:
    """Create a token called NAME and print it (it is shown only this once)."""
    token = create_token(db.session, name)
    db.session.commit()
    click.echo(token)
