"""`mailer digest send`: the digest from the command line, with a dry run and a test send."""
from __future__ import annotations

import sys
import time

import click
from flask.cli import with_appcontext

from ..addresses import InvalidSignup
from ..extensions import db
from ..outbox import digest_mail, ledger
from ..models import utcnow
from ..posts import digests
from ..posts import local_time as clock


@click.group("digest")
def digest_cli() -> None:
    """Digests of the posts subscribers have not received yet."""


@digest_cli.command("send")
@click.option("--dry-run", is_flag=True, help="Show what would be sent, to how many; send nothing.")
@click.option("--test-to", metavar="ADDRESS", help="Send one test copy to ADDRESS instead of the list.")
@click.option("--subject", help="Subject line (default: from the post titles).")
@click.option("--intro", help="An opening line above the posts.")
@click.option("--wait/--no-wait", default=False, help="Stay and show a progress bar until the digest is sent.")
@click.option("--monthly", is_flag=True, help="The monthly summary (last month's posts) for readers who chose it.")
@click.option("--local-time", metavar="HH:MM", help="Each reader's mail at their next HH:MM, in their time zone.")
@with_appcontext
def send(dry_run: bool, test_to: str | None, subject: str | None, intro: str | None, wait: bool, monthly: bool,
         local_time: str | None) -> None:
    """Send a digest of the new posts to every confirmed subscriber who wants each digest (or, --monthly, the summary)."""
    audience = "monthly" if monthly else "every"
    try:
        if dry_run:
            posts = digests.choose_posts(db.session, audience=audience)
            sample = digest_mail.preview(subject or digests.default_subject(posts), intro or "", posts)
            recipients = db.session.scalar(digests.confirmed_count(audience))
            click.echo(f"Dry run: would send {len(posts)} post(s) to {recipients} confirmed subscriber(s).")
            click.echo(f"Subject: {sample.subject}\n")
            click.echo(sample.text)
            return
        if test_to:
            count = digests.send_test(db.session, test_to, subject, intro)
            db.session.commit()
            ledger.wake()
            click.echo(f"Test digest with {count} post(s) queued for {test_to}.")
            return
        at = clock.read_local_time(local_time) if local_time is not None else None
        digest = digests.create_digest(db.session, subject, intro, audience=audience, local_time=at)
    except digests.NothingNew as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except (digests.DigestError, InvalidSignup) as exc:
        click.echo(f"Cannot send: {exc}", err=True)
        sys.exit(2)
    db.session.commit()
    ledger.wake()
    click.echo(f"Digest {digest.id} ({digest.subject!r}): owed to {digest.recipients} subscriber(s); the workers are sending it.")
    if digest.local_time:
        _show_waiting(digest)
    if wait:
        _follow(digest)


def _show_waiting(digest) -> None:
    """The mails that wait for their readers' local time, by the hour (UTC) they fall due."""
    waiting = clock.waiting_for(db.session, digest, utcnow())
    if not waiting.total:
        return
    click.echo(f"{waiting.total} mail(s) wait for their reader's {digest.local_time}; due by hour (UTC):")
    peak = max(count for _, count in waiting.hours)
    for hour, count in waiting.hours:
        click.echo(f"  {hour:%Y-%m-%d %H:00}  {'#' * max(1, round(30 * count / peak)):<30} {count}")


def _follow(digest) -> None:
    with click.progressbar(length=digest.recipients, label="sending", show_pos=True) as bar:
        done = 0
        while True:
            db.session.expire_all()
            state = digests.progress(db.session, digest)
            finished = state["sent"] + state["failed"] + state["skipped"]
            bar.update(finished - done)
            done = finished
            if state["pending"] == 0 or state["status"] in ("paused", "cancelled"):
                break
            time.sleep(1)
    click.echo(f"{state['status']}: {state['sent']} sent, {state['failed']} failed, {state['skipped']} skipped.")
