"""Three worker nodes, as on three hosts, sending one digest of 20,000: each sends a share, every reader gets it,
and when one node is SIGKILLed the others finish its batches once their lease runs out.

Each node relays through an SMTP server of its own, as hosts each with their own relay would, so what each
server received is that node's share.
"""
from __future__ import annotations

import time
from collections import Counter

import pytest

from mailer.extensions import db
from mailer.models import Digest
from mailer.outbox import ledger
from mailer.posts import digests
from tests import factories
from tests.conftest import Worker, build_stack_env, fresh_database, make_app, stack_overrides, truncate_all
from tests.smtp_sink import SmtpSink, _free_port

pytestmark = pytest.mark.integration
NODES_REDIS = "redis://127.0.0.1:6379/13"
READERS = 20_000


@pytest.fixture(scope="module")
def relays():
    servers = [SmtpSink(port=_free_port()).start() for _ in range(3)]
    yield servers
    for s in servers:
        s.stop()


@pytest.fixture(scope="module")
def nodes_env(redis_url, relays, tmp_path_factory):
    return build_stack_env(fresh_database("mailer_nodes"), NODES_REDIS, relays[0].url,
                           tmp_path_factory.mktemp("nodes"), LEASE_SECONDS="4")


@pytest.fixture
def cluster(nodes_env, relays, tmp_path):
    """The app, and three nodes named node0..node2, each with its own relay; only node0 runs beat, as it must."""
    app = make_app(tmp_path, **stack_overrides(nodes_env))
    truncate_all(app)
    for relay in relays:
        relay.clear()
    nodes: list[Worker] = []
    try:
        for n, relay in enumerate(relays):
            nodes.append(Worker(nodes_env, tmp_path / f"node{n}.log", concurrency=2, beat=n == 0, name=f"node{n}",
                                SMTP_URL=relay.url))
        with app.app_context():
            yield app, nodes
            db.session.remove()
            db.engine.dispose()
    finally:
        for node in nodes:
            node.stop()


def received(relay: SmtpSink) -> Counter:
    with relay.handler.lock:
        return Counter(r.recipients[0] for r in relay.handler.messages)


def send_digest() -> int:
    factories.post()
    digest = digests.create_digest(db.session)
    db.session.commit()
    ledger.wake()
    return digest.id


def wait_for_all_sent(digest_id: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        state = digests.progress(db.session, db.session.get(Digest, digest_id))
        if state["sent"] + state["failed"] >= READERS:
            return state
        time.sleep(0.5)
    raise AssertionError(f"digest {digest_id} stuck: {state}")


def test_three_nodes_each_send_a_share_and_every_reader_gets_it_once(cluster, relays):
    app, nodes = cluster
    everyone = factories.subscribers(READERS)
    state = wait_for_all_sent(send_digest(), 300)
    shares = [received(r) for r in relays]
    together = sum(shares, Counter())
    assert state["sent"] == READERS and set(together) == set(everyone)
    assert set(together.values()) == {1}, "a reader got the digest twice"
    assert all(sum(s.values()) >= READERS // 20 for s in shares), \
        f"a node sent (almost) nothing: {[sum(s.values()) for s in shares]}"


def test_a_killed_node_leaves_its_batches_to_the_others(cluster, relays):
    app, nodes = cluster
    everyone = factories.subscribers(READERS)
    for relay in relays:
        relay.handler.delay = 0.002  # slow enough that the digest is still going when node2 dies
    digest_id = send_digest()
    deadline = time.monotonic() + 120
    while sum(received(relays[2]).values()) < 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    nodes[2].kill()
    # A mail whose bytes were on the wire at the kill is still taken in by its relay a moment later: count the
    # killed node's share once its relay has had nothing new for a second.
    settled, last = time.monotonic() + 1, sum(received(relays[2]).values())
    while time.monotonic() < settled:
        time.sleep(0.1)
        if (now := sum(received(relays[2]).values())) != last:
            settled, last = time.monotonic() + 1, now
    at_kill = [sum(received(r).values()) for r in relays]
    assert sum(at_kill) < READERS, "the digest was done before node2 could be killed; make the relays slower"
    for relay in relays:
        relay.handler.delay = 0

    state = wait_for_all_sent(digest_id, 300)
    together = sum((received(r) for r in relays), Counter())
    assert state["sent"] == READERS and set(together) == set(everyone)
    by_node = [sum(received(r).values()) for r in relays]
    assert by_node[2] == at_kill[2], "the killed node sent after its death"
    assert by_node[0] + by_node[1] >= READERS - at_kill[2], "the surviving nodes did not send the rest"
    duplicates = sum(n - 1 for n in together.values())
    assert duplicates <= 2, f"{duplicates} twice; at most one mail in flight per killed pool process (2)"
