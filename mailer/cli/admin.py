"""`mailer admin create EMAIL`, `mailer admin unlock`: the console's accounts from the command line."""
from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from ..admin.auth import WeakPassword, set_admin, unlock
from ..extensions import db


@click.group("admin")
def admin_cli() -> None:
    """Accounts for the admin console at /admin/."""


@admin_cli.command("create")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@with_appcontext
def create(email: str, password_stdin: bool) -> None:
    """Create the console account EMAIL, or set a new password for it."""
    if "@" not in email or len(email) > 254:
        raise click.BadParameter(f"{email!r} is not an email address.", param_hint="EMAIL")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        created = set_admin(db.session, email, password)
    except WeakPassword as exc:
        raise click.ClickException(f"{exc} Nothing was changed.") from None
    db.session.commit()
    what = "Created the account" if created else "Set a new password for the existing account"
    click.echo(f"{what} {email.strip().lower()}; log in at /admin/login.")


@admin_cli.command("unlock")
@with_appcontext
def unlock_sign_in() -> None:
    """Open the console's sign-in again after a lockout (forgets the failed attempts of the last 15 minutes)."""
    forgotten = unlock(db.session)
    db.session.commit()
    click.echo(f"Forgot {forgotten} failed sign-in attempt{'' if forgotten == 1 else 's'}; "
               "sign-in at /admin/login is open again.")
