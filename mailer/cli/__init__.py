"""The project's commands under `mailer`: one module per command group, each command asking for the app context."""
from __future__ import annotations

from flask import Flask

from .admin import admin_cli
from .api_tokens import api_token
from .bounces import bounces_cli
from .dev import dev
from .digests import digest_cli
from .dns_records import dns_records
from .embed import embed
from .feeds import feed
from .subscribers import subscribers

COMMANDS = (dev, digest_cli, embed, api_token, feed, subscribers, admin_cli, bounces_cli, dns_records)


def register(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
