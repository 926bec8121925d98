"""`mailer bounces process`: one bounce or complaint on standard input, as an MTA's pipe transport delivers it."""
from __future__ import annotations

import logging
import sys

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from ..bounces.dsn import NotABounce
from ..bounces.intake import record_dsn
from ..extensions import db

log = logging.getLogger(__name__)
MAX_BYTES = 25 * 1024 * 1024  # a bounce may carry the whole returned message
EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and tries the pipe again later


@click.group("bounces")
def bounces_cli() -> None:
    """Bounces and complaints reported by mail servers."""


@bounces_cli.command("process")
@click.option("--recipient", metavar="ADDRESS",
              help="The envelope recipient, when the MTA passes it (Postfix pipe: --recipient ${recipient}).")
@with_appcontext
def process(recipient: str | None) -> None:
    """Read one bounce (DSN) or complaint (ARF) message on standard input and act on it."""
    raw = sys.stdin.buffer.read(MAX_BYTES + 1)
    if not raw.strip():
        _fail(1, "Nothing on standard input: pipe one bounce or complaint message into `mailer bounces process`.")
    try:
        outcome = record_dsn(db.session, raw[:MAX_BYTES], recipient)
        db.session.commit()
    except NotABounce as exc:
        db.session.rollback()
        _fail(1, f"Ignored: {exc}.")
    except SQLAlchemyError as exc:
        db.session.rollback()
        _fail(EX_TEMPFAIL, f"Could not store the report, the database is unavailable ({type(exc).__name__}); "
                           "exit status 75 asks the MTA to deliver it again later.")
    except Exception as exc:  # a message malformed in a way the email package did not foresee: no traceback to the MTA
        db.session.rollback()
        log.debug("unreadable bounce", exc_info=True)
        _fail(1, f"Ignored: the message could not be read as a report ({type(exc).__name__}: {exc}).")
    click.echo(outcome)


def _fail(code: int, message: str) -> None:
    click.echo(message, err=True)
    sys.exit(code)
