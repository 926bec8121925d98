"""Faults while sending, each with its own workers: a digest through SIGKILL mid-send, an SMTP server down, 550
and 421 replies; the mail a person waits for (a confirmation) through a server down, stalling, 421, 450 and 550."""
from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import Delivery, Digest, Subscriber
from mailer.posts import digests
from tests import factories
from tests.conftest import Worker, build_stack_env, fresh_database, make_app, stack_overrides, truncate_all
from tests.smtp_sink import SmtpSink, _free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
FAULT_REDIS = "redis://127.0.0.1:6379/14"


@pytest.fixture(scope="module")
def sink():
    s = SmtpSink(port=_free_port()).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def fault_env(redis_url, sink, tmp_path_factory):
    """A database and broker of their own, so no other test's worker joins in."""
    return build_stack_env(fresh_database("mailer_faults"), FAULT_REDIS, sink.url, tmp_path_factory.mktemp("faults"),
                           LEASE_SECONDS="4", RETRY_BASE_SECONDS="1")


@pytest.fixture
def stack(fault_env, sink, tmp_path):
    app = make_app(tmp_path, **stack_overrides(fault_env))
    truncate_all(app)
    sink.clear()
    workers: list[Worker] = []

    def start_worker(**kwargs) -> Worker:
        w = Worker(fault_env, tmp_path / f"worker{len(workers)}.log", name=f"fault{len(workers)}", **kwargs)
        workers.append(w)
        return w

    with app.app_context():
        yield app, start_worker
        for w in workers:
            w.stop()
        db.session.remove()
        db.engine.dispose()


def start_digest() -> int:
    digest = digests.create_digest(db.session)
    db.session.commit()
    from mailer.outbox import ledger

    ledger.wake()
    return digest.id


def wait_until_sent(digest_id: int, target: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        state = digests.progress(db.session, db.session.get(Digest, digest_id))
        if state["sent"] + state["failed"] >= target:
            return state
        time.sleep(0.2)
    raise AssertionError(f"digest {digest_id} stuck: {state}")


def received(sink) -> Counter:
    with sink.handler.lock:
        return Counter(r.recipients[0] for r in sink.handler.messages)


@pytest.mark.parametrize("window", [20, 1])
def test_a_sigkilled_worker_costs_at_most_one_mail_per_pool_process(stack, sink, window):
    """Each accepted mail is written as its reply is read, whatever SEND_WINDOW: a killed process sends again
    at most the one mail whose reply was on its way (RFC 5321 4.1.1.4 leaves that one unknowable)."""
    app, start_worker = stack
    everyone = factories.subscribers(300)
    factories.post()
    sink.handler.delay = 0.01
    first = start_worker(concurrency=2, SEND_WINDOW=str(window))
    digest_id = start_digest()
    wait_until_sent(digest_id, 60)
    first.kill()
    killed_at = sum(received(sink).values())
    assert killed_at < 300, "the worker finished before it could be killed; make the sink slower"

    sink.handler.delay = 0
    start_worker(concurrency=2)  # its beat sweeps the rows whose lease ran out
    state = wait_until_sent(digest_id, 300)
    copies = received(sink)
    assert set(copies) == set(everyone) and state["sent"] == 300
    duplicates = sum(n - 1 for n in copies.values())
    assert duplicates <= 2, f"{duplicates} duplicates; at most one mail in flight per killed pool process (2)"


def test_an_smtp_server_that_refuses_connections_for_a_while(stack, sink, fault_env):
    app, start_worker = stack
    everyone = factories.subscribers(40)
    factories.post()
    sink.stop()
    start_worker(concurrency=1)
    digest_id = start_digest()
    wait_until(lambda: retried_rows() > 0, 30, "a digest row refused, rescheduled and refused again")
    assert digests.progress(db.session, db.session.get(Digest, digest_id))["sent"] == 0
    sink.restart()
    wait_until_sent(digest_id, 40)
    copies = received(sink)
    assert set(copies) == set(everyone) and set(copies.values()) == {1}


def retried_rows() -> int:
    """Rows tried at least twice and waiting for their next attempt."""
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Delivery).where(Delivery.attempts >= 2,
                                                                                Delivery.status == "queued"))


def test_a_550_bounces_one_subscriber_and_the_rest_proceed(stack, sink):
    app, start_worker = stack
    everyone = factories.subscribers(30)
    factories.post()
    sink.handler.refuse["reader7@example.com"] = "550 5.1.1 <reader7@example.com>: no such user"
    start_worker(concurrency=1)
    state = wait_until_sent(start_digest(), 30)
    assert (state["sent"], state["failed"]) == (29, 1)
    assert db.session.scalar(select(Subscriber.status).where(Subscriber.email == "reader7@example.com")) == "bounced"
    assert set(received(sink)) == set(everyone) - {"reader7@example.com"}


def test_421_throttling_slows_down_then_completes_once_each(stack, sink):
    app, start_worker = stack
    everyone = factories.subscribers(40)
    factories.post()
    # Four in a row: the pause doubles each time (0.1 s to 0.8 s); eight would climb to the 5 s ceiling and
    # take most of a minute to come down again, testing nothing more.
    sink.handler.temporary_failures = 4
    sink.handler.temporary_reply = "421 4.7.0 too many messages, slow down"
    worker = start_worker(concurrency=1)
    wait_until_sent(start_digest(), 40)
    copies = received(sink)
    assert set(copies) == set(everyone) and set(copies.values()) == {1}
    pauses = re.findall(r"throttles us \(421\); pausing ([0-9.]+) s", worker.log())
    assert pauses == ["0.10", "0.20", "0.40", "0.80"], pauses  # it slowed down instead of hammering on


def confirmation_of(address: str) -> Delivery:
    db.session.expire_all()
    return db.session.scalar(select(Delivery).join(Subscriber).where(Subscriber.email == address,
                                                                      Delivery.kind == "confirmation"))


def wait_for_attempts(address: str, attempts: int, timeout: float = 30) -> Delivery:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = confirmation_of(address)
        if row is not None and row.attempts >= attempts:
            return row
        time.sleep(0.1)
    raise AssertionError(f"the confirmation to {address} was not tried {attempts} times: {row and row.last_error}")


def handler_set(**values):
    """A change to the sink's behaviour, as a function of the sink."""
    return lambda sink: [setattr(sink.handler, name, value) for name, value in values.items()]


def answering(reply: str) -> tuple:
    return handler_set(temporary_failures=10**6, temporary_reply=reply), handler_set(temporary_failures=0)


FAULTS = {  # how the server misbehaves, and how it stops
    "down": (lambda sink: sink.stop(), lambda sink: sink.restart()),
    "stalling": (handler_set(slow_replies=10**6), handler_set(slow_replies=0)),
    "421": answering("421 4.7.0 too many connections, slow down"),
    "450": answering("450 4.2.1 mailbox busy, try later"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_confirmation_waits_out_an_smtp_fault_and_goes_once(stack, sink, fault):
    app, start_worker = stack
    begin, end = FAULTS[fault]
    start_worker(concurrency=1, SMTP_TIMEOUT="1")  # a stalling server is given up on after a second
    begin(sink)
    assert app.test_client().post("/subscribe", json={"email": "ann@example.com"}).status_code == 202

    tried = wait_for_attempts("ann@example.com", 2)  # tried, failed for now, and tried again after a backoff
    assert tried.status in ("queued", "sending") and tried.last_error
    assert sink.to("ann@example.com") == []
    end(sink)

    (mail,) = sink.wait_for("ann@example.com", "Confirm", timeout=30)
    deadline = time.monotonic() + 10
    while confirmation_of("ann@example.com").status != "sent" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert confirmation_of("ann@example.com").status == "sent"
    time.sleep(1.5)  # a second copy would have come by now (backoff 1 s)
    assert len(sink.to("ann@example.com")) == 1


def test_a_confirmation_refused_for_good_bounces_the_address(stack, sink):
    app, start_worker = stack
    start_worker(concurrency=1)
    sink.handler.refuse["gone@example.com"] = "550 5.1.1 <gone@example.com>: no such user"
    client = app.test_client()
    assert client.post("/subscribe", json={"email": "gone@example.com"}).status_code == 202

    row = wait_for_attempts("gone@example.com", 1)
    deadline = time.monotonic() + 10
    while row.status != "failed" and time.monotonic() < deadline:
        time.sleep(0.1)
        row = confirmation_of("gone@example.com")
    assert row.status == "failed" and "550" in row.last_error
    assert db.session.scalar(select(Subscriber.status).where(Subscriber.email == "gone@example.com")) == "bounced"
    # Signing up again owes nothing: the address is suppressed.
    assert client.post("/subscribe", json={"email": "gone@example.com"}).status_code == 202
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 1
