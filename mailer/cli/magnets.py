"""`mailer magnets store-files`: bring magnet files uploaded before they were kept in the database into it."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext


@click.group("magnets")
def magnets_cli() -> None:
    """Lead magnets: the files subscribers download."""


@magnets_cli.command("store-files")
@click.option("--from", "elsewhere", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A folder to look in, by file name, for files no longer at the path recorded (a moved instance "
                   "folder's magnets/).")
@with_appcontext
def store_files(elsewhere: Path | None) -> None:
    """Copy each uploaded magnet file still on this host's disk into the database; safe to run again."""
    from ..extensions import db
    from ..magnets.from_disk import store_disk_files

    moved = store_disk_files(db.session, Path(current_app.config["INSTANCE_PATH"]), elsewhere)
    for line in moved.stored:
        click.echo(f"stored {line}")
    for name in moved.imports:
        click.echo(f"the import of {name} was left unfinished here: upload it again in the console "
                   "(rows already imported are updated, not duplicated)")
    if not moved.missing:
        click.echo(f"{len(moved.stored)} file(s) stored; every magnet is now served from the database.")
        return
    for line in moved.missing:
        click.echo(f"not found {line}", err=True)
    raise click.ClickException(f"{len(moved.missing)} file(s) not found on this host: run this again where they "
                               "are (or with --from FOLDER), or upload them again on the magnet's page.")
