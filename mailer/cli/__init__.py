"""The project's commands under `mailer`: a module per command group, each command asking for the app context."""
from __future__ import annotations

import click
from flask import Flask

from . import admin, api_tokens, bounces, dev, digests, dns_records, embed, feeds, magnets, subscribers

COMMANDS = (dev.dev, digests.digest_cli, embed.embed, api_tokens.api_token, feeds.feed, subscribers.subscribers,
            admin.admin_cli, bounces.bounces_cli, dns_records.dns_records, magnets.magnets_cli)
DB_FIRST = ("upgrade", "current", "history")  # what someone running the app needs; the rest is for developers


class SectionedHelp(click.Group):
    """A group whose help lists `first` (in that order) under "Commands" and the others under `rest_title`."""

    first: tuple[str, ...] = ()
    rest_title = "Other commands"

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return [n for n in self.first if n in names] + sorted(n for n in names if n not in self.first)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = {True: [], False: []}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows[name in self.first].append((name, command.get_short_help_str(formatter.width - 30)))
        for title, section in (("Commands", rows[True]), (self.rest_title, rows[False])):
            if section:
                with formatter.section(title):
                    formatter.write_dl(section)


class DatabaseGroup(SectionedHelp):
    first = DB_FIRST
    rest_title = "Developer commands (Alembic migrations)"


def register(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
    migrations = app.cli.commands.get("db")
    if migrations is not None:  # Flask-Migrate's group, its help led by what running the app needs
        app.cli.add_command(DatabaseGroup(
            "db", commands=migrations.commands, params=migrations.params, callback=migrations.callback,
            help="The database schema: `mailer db upgrade` brings it up to date (safe to repeat), "
                 "`mailer db current` says where it is."))
