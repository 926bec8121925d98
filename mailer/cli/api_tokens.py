"""`mailer api-token create NAME [--scope …]`, `list` and `revoke`: bearer tokens for /api/v1 and /webhooks/dsn."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..api_tokens import SCOPES, TokenNotFound, create_token, list_tokens, revoke_token, token_named
from ..extensions import db

SCOPE_HELP = "; ".join(f"{name}: {text}" for name, text in SCOPES.items())


@click.group("api-token")
def api_token() -> None:
    """Bearer tokens for /api/v1 and /webhooks/dsn."""


@api_token.command("create")
@click.argument("name")
@click.option("--scope", "scopes", multiple=True, type=click.Choice(list(SCOPES)),
              help=f"What the token may do; repeat for several. Without it, every scope. ({SCOPE_HELP})")
@with_appcontext
def create_api_token(name: str, scopes: tuple[str, ...]) -> None:
    """Create a token called NAME and print it (it is shown only this once)."""
    token = create_token(db.session, name, scopes or SCOPES)
    db.session.commit()
    click.echo(token)  # alone on standard output, so that TOKEN=$(mailer api-token create …) works
    click.echo(f"Scopes: {', '.join(s for s in SCOPES if not scopes or s in scopes)}. Store the token now: "
               "it is not shown again.", err=True)


@api_token.command("list")
@with_appcontext
def list_api_tokens() -> None:
    """Every token: id, name, scopes, when it was created, last used and revoked."""
    tokens = list_tokens(db.session)
    if not tokens:
        click.echo("No API token yet: `mailer api-token create NAME` makes one.", err=True)
        return
    rows = [("ID", "NAME", "SCOPES", "CREATED", "LAST USED", "REVOKED")]
    rows += [(str(t.id), t.name, ",".join(t.scope_list), _when(t.created_at), _when(t.last_used_at),
              _when(t.revoked_at)) for t in tokens]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@api_token.command("revoke")
@click.argument("name_or_id", metavar="NAME-OR-ID")
@with_appcontext
def revoke_api_token(name_or_id: str) -> None:
    """Revoke a token by its id or name: requests with it get 401 from now on."""
    try:
        token = token_named(db.session, name_or_id)
    except TokenNotFound as exc:
        raise click.ClickException(str(exc)) from None
    if not revoke_token(token):
        click.echo(f"Token {token.id} ({token.name!r}) was already revoked on {_when(token.revoked_at)}.")
        return
    db.session.commit()
    click.echo(f"Revoked token {token.id} ({token.name!r}): requests with it now get 401.")


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"
