"""SEND_RATE for real: the limiter on Redis, shared by every worker, holds the mail to the rate at the SMTP server."""
from __future__ import annotations

import shutil
import threading
import time

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.mail.pacing import Pacer
from mailer.models import Delivery, Subscriber
from mailer.outbox import ledger, sender
from tests.conftest import make_app

RATE = 10  # mails per second
MAILS = 3 * RATE  # three seconds' worth: the first second's go at once, the rest must wait


@pytest.fixture
def rated_app(tmp_path, sqlite_template, smtp, redis_url, monkeypatch):
    """An app on SQLite whose mail goes to the SMTP sink at SEND_RATE, limited through Redis."""
    shutil.copy(sqlite_template, tmp_path / "mailer.db")
    monkeypatch.setattr(sender, "_pacers", {})  # a pacer of this app, not one left under a reused id
    app = make_app(tmp_path, SMTP_URL=smtp.url, SEND_RATE=RATE, REDIS_URL=redis_url)
    smtp.clear()
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()
    smtp.clear()


def earliest_moments(count: int, start: float) -> list[float]:
    """When the k-th mail may leave at most RATE a second, counted from `start` (a moving window of 1 s)."""
    return [start + k // RATE for k in range(count)]


def test_a_batch_at_send_rate_reaches_the_server_no_faster_than_the_rate(rated_app, smtp):
    subscribers = [Subscriber(email=f"paced{n}@example.com", status="confirmed") for n in range(MAILS)]
    db.session.add_all(subscribers)
    db.session.flush()
    for sub in subscribers:
        ledger.queue(db.session, "welcome", sub.id, f"welcome:{sub.id}:1")
    db.session.commit()
    assert sender.batch_size(rated_app.config) >= MAILS  # one batch: the pace is the limiter's, not the sweep's

    started = time.monotonic()
    assert sender.deliver_due() == MAILS
    with smtp.handler.lock:
        moments = sorted(r.at for r in smtp.handler.messages)

    assert len(moments) == MAILS
    assert db.session.scalar(select(func.count()).where(Delivery.status == "sent")) == MAILS
    # A loaded machine only makes mail later: every mail is at or after the earliest moment the rate allows.
    late_enough = [at >= earliest - 0.01 for at, earliest in zip(moments, earliest_moments(MAILS, started))]
    assert all(late_enough), f"{late_enough.count(False)} mails left before the rate allowed them"
    assert moments[-1] - started < 30, "the limiter let the mail through at last"


def test_the_rate_is_shared_by_every_worker_process(redis_url):
    # Two pacers are what two worker processes have; through Redis they share one budget, not one each.
    pacers = [Pacer(RATE, redis_url), Pacer(RATE, redis_url)]
    assert all(p.limiter.storage.check() for p in pacers)
    moments: list[float] = []
    lock = threading.Lock()

    def send(pacer: Pacer) -> None:
        for _ in range(MAILS // 2):
            pacer.wait()
            with lock:
                moments.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=send, args=(p,)) for p in pacers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(moments) == MAILS
    late_enough = [at >= earliest - 0.01 for at, earliest in zip(sorted(moments), earliest_moments(MAILS, started))]
    assert all(late_enough), f"{late_enough.count(False)} sends went before the shared rate allowed them"
