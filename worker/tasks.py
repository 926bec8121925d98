"""Thin tasks: they carry ids and limits, and call the domain in mailer/."""
import logging

from celery import shared_task
from flask import current_app

from mailer.extensions import db
from mailer.ops import metrics
from mailer.outbox import ledger, sender

log = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def deliver_due(limit: int | None = None, sweep: bool = False) -> None:
    """Send one batch of due outbox rows; a full batch first asks for another, so idle workers join in."""
    if sweep:  # beat's periodic call: its time is a metric (mailer_beat_last_sweep_timestamp_seconds)
        metrics.record_sweep(current_app.config)
    sender.deliver_due(limit, more=lambda: deliver_due.delay(limit))


@shared_task(ignore_result=True)
def store_clicks() -> None:
    """Move the clicks waiting in Redis into the database (mailer/click_buffer.py)."""
    from mailer.posts.click_buffer import drain

    drain(db.session, current_app.config)


@shared_task(ignore_result=True)
def advance_welcome() -> None:
    """Owe the welcome steps that fell due, then wake a worker to send them."""
    from mailer.people.welcome import advance_welcome_sequences

    if advance_welcome_sequences(db.session):
        db.session.commit()
        ledger.wake()
    else:
        db.session.commit()


@shared_task(ignore_result=True)
def fetch_feed() -> None:
    from mailer.posts.feeds import FeedError
    from mailer.posts.feeds import fetch_feed as fetch

    url = current_app.config.get("FEED_URL")
    if not url:
        return
    try:
        fetch(db.session, url)
    except FeedError:
        pass  # fetch_feed logged it and stored it for the console; the next poll tries again
    db.session.commit()


@shared_task(ignore_result=True)
def send_scheduled_digest(audience: str = "every") -> None:
    from mailer.posts.digests import NothingNew, create_digest

    try:
        digest = create_digest(db.session, audience=audience)
    except NothingNew:
        log.info("scheduled %s digest: no new posts for it; nothing sent", audience)
        return
    db.session.commit()
    log.info("scheduled %s digest %s owed to %s subscribers", audience, digest.id, digest.recipients)
    ledger.wake()


@shared_task(ignore_result=True)
def start_due_digests() -> None:
    """Owe the mails of the scheduled digests that fell due (each started once, whoever else tries), then wake."""
    from mailer.posts.digest_schedule import start_due_digests as start_due

    started = start_due(db.session)
    db.session.commit()
    for digest in started:
        log.info("scheduled digest %s started: owed to %s subscribers", digest.id, digest.recipients)
    if started:
        ledger.wake()


@shared_task(ignore_result=True)
def decide_subject_tests() -> None:
    """Choose the winners of the subject tests that fell due and owe each to its rest (once), then wake."""
    from mailer.posts.subject_tests import decide_due_tests

    decided = decide_due_tests(db.session)
    db.session.commit()
    for digest in decided:
        log.info("subject test of digest %s decided: %r goes to the rest, %s subscribers in all", digest.id,
                 digest.subject, digest.recipients)
    if decided:
        ledger.wake()


@shared_task(ignore_result=True)
def purge_unconfirmed() -> None:
    """Forget signups never confirmed within UNCONFIRMED_PURGE_DAYS (commits batch by batch)."""
    from mailer.models import utcnow
    from mailer.people.housekeeping import purge_unconfirmed as purge

    purge(db.session, utcnow())


@shared_task(ignore_result=True)
def import_file(token: str) -> None:
    """Import the next part of a CSV uploaded in the console, then ask for the part after it (any worker takes it)."""
    from mailer.admin import imports

    state = imports.step(db.session, token)
    if state is None:
        return
    if state["mails_owed"]:
        ledger.wake()
    if not state["done"]:
        # Busy: the console's page is stepping it itself just now; look again in a second.
        import_file.apply_async((token,), countdown=1 if state.get("busy") else 0)


@shared_task(ignore_result=True)
def apply_sunset_rule() -> None:
    """Daily: stop the digests of readers who left the sunset mail unanswered, ask the newly quiet ones, wake."""
    from mailer.people.sunset import Rule
    from mailer.people.sunset import apply_sunset_rule as apply

    rule = Rule.from_config(current_app.config)
    if rule is None:
        return
    applied = apply(db.session, rule)
    db.session.commit()
    log.info("sunset rule: %s readers asked, digests stopped for %s", applied.asked, applied.stopped)
    if applied.asked:
        ledger.wake()


@shared_task(ignore_result=True)
def fold_tallies() -> None:
    """Move the counters' deltas into their rows, so the dashboard's and the stats API's reads stay short."""
    from mailer.people import tallies

    tallies.fold(db.session)
    db.session.commit()


@shared_task(ignore_result=True)
def check_tallies() -> None:
    """Count the rows afresh against the counters; drift is logged and mended (mailer/people/tallies.py)."""
    from mailer.people import tallies

    tallies.check(db.session)
    db.session.commit()
