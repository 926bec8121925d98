"""`mailer` (and `python -m mailer`): Flask's CLI for the app, with the project's own commands (mailer/cli/)."""
from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from . import create_app
from .cli import COMMANDS, SectionedHelp
from .config import ConfigError


class MailerGroup(SectionedHelp, FlaskGroup):
    """Flask's CLI with our commands listed first and Flask's own (run, shell, routes) after them."""

    first = (*(command.name for command in COMMANDS), "db")
    rest_title = "Flask's commands"


def _create_app(*_args) -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        click.echo(f"Configuration error: {exc}", err=True)
        sys.exit(2)


def main() -> None:
    MailerGroup(create_app=_create_app, add_version_option=False, load_dotenv=False,
               help="Newsletter and lead-magnet mailer. `mailer dev` runs everything locally.")(prog_name="mailer")


if __name__ == "__main__":
    main()
