"""The project's commands under `mailer`: a module per command group, each command asking for the app context."""
from __future__ import annotations

from flask import Flask

from . import admin, api_tokens, bounces, dev, digests, dns_records, embed, feeds, subscribers

COMMANDS = (dev.dev, digests.digest_cli, embed.embed, api_tokens.api_token, feeds.feed, subscribers.subscribers,
            admin.admin_cli, bounces.bounces_cli, dns_records.dns_records)


def register(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
