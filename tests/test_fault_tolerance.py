"""The services failing under the app, for real: PostgreSQL and Redis cut and restored, processes SIGKILLed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from sqlalchemy import func, select

from mailer import extensions
from mailer.extensions import db
from mailer.models import Delivery, Subscriber
from tests.conftest import ROOT, Worker, build_stack_env, fresh_database, make_app, stack_overrides
from tests.faults import CuttableProxy
from tests.smtp_sink import SmtpSink, _free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
FAULT_REDIS_DB = 12


@pytest.fixture
def sink():
    s = SmtpSink().start()
    yield s
    s.stop()


@pytest.fixture
def proxied_env(redis_url, sink, tmp_path):
    """A stack whose PostgreSQL and Redis are reached through proxies the test can cut."""
    pg_proxy, redis_proxy = CuttableProxy("127.0.0.1", 5432), CuttableProxy("127.0.0.1", 6379)
    try:
        direct = fresh_database("mailer_fault_tolerance")
        proxied = direct.replace("127.0.0.1:5432", f"127.0.0.1:{pg_proxy.port}")
        env = build_stack_env(direct, f"redis://127.0.0.1:{redis_proxy.port}/{FAULT_REDIS_DB}", sink.url, tmp_path)
        env["DATABASE_URL"] = proxied
        yield env, pg_proxy, redis_proxy
    finally:
        pg_proxy.close()
        redis_proxy.close()


@pytest.fixture
def proxied_app(proxied_env, tmp_path):
    env, pg_proxy, redis_proxy = proxied_env
    app = make_app(tmp_path, **stack_overrides(env))
    with app.app_context():
        yield app, pg_proxy, redis_proxy
        db.session.remove()
        db.engine.dispose()


def count(model, **where) -> int:
    db.session.rollback()
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return db.session.scalar(query)


def test_database_down_gives_503_stores_nothing_and_recovers_without_restart(proxied_app):
    app, pg_proxy, _ = proxied_app
    client = app.test_client()
    assert client.post("/subscribe", json={"email": "before@example.com"}).status_code == 202

    pg_proxy.cut()
    down = client.post("/subscribe", json={"email": "during@example.com"})
    assert down.status_code == 503 and "try again" in down.json["error"]
    page = client.post("/subscribe", data={"email": "during@example.com"})
    assert page.status_code == 503 and b"Nothing was saved" in page.data
    health = client.get("/healthz")
    assert health.status_code == 503 and health.json["database"].startswith("down")

    pg_proxy.restore()
    assert client.get("/healthz").status_code == 200
    assert client.post("/subscribe", json={"email": "after@example.com"}).status_code == 202
    assert count(Subscriber, email="during@example.com") == 0  # nothing half-written
    assert count(Subscriber) == 2 and count(Delivery) == 2


def test_redis_down_signups_succeed_and_confirmations_go_out_when_it_returns(proxied_env, proxied_app, sink, tmp_path):
    app, _, redis_proxy = proxied_app  # the app context and its pool are the fixture's to close
    worker = Worker(proxied_env[0], tmp_path / "worker.log", concurrency=1, name="redisfault")
    try:
        redis_proxy.cut()
        client = app.test_client()
        started = time.monotonic()
        for n in range(5):
            assert client.post("/subscribe", json={"email": f"r{n}@example.com"}).status_code == 202
        assert time.monotonic() - started < 5, "a signup must not wait long on a broker that is down"
        assert client.get("/healthz").status_code == 503
        time.sleep(2)
        assert sink.handler.messages == []  # the worker cannot hear about them yet

        redis_proxy.restore()
        for n in range(5):
            sink.wait_for(f"r{n}@example.com", "Confirm your", timeout=60)
        deadline = time.monotonic() + 10  # the sink has the mail a moment before the worker records it
        while count(Delivery, status="sent") < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert count(Delivery, status="sent") == 5
    finally:
        worker.stop()


def test_sigkilled_web_and_worker_processes_lose_no_acknowledged_signup(redis_url, sink, tmp_path):
    # A short lease, so the rows the killed worker held come back within the test.
    env = build_stack_env(fresh_database("mailer_sigkill"), "redis://127.0.0.1:6379/11", sink.url, tmp_path,
                          SIGNUP_RATE_LIMIT="100000/minute", LEASE_SECONDS="5",
                          CONFIRMATION_HOURLY_CAP="0")  # the load may pass the hourly cap; each signup must get its mail
    port = _free_port()
    log = (tmp_path / "gunicorn.log").open("wb")
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
                            "mailer:create_app()"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        worker = Worker(env, tmp_path / "worker.log", concurrency=2, name="sigkill")
    except BaseException:
        web.terminate()
        web.wait(timeout=20)
        log.close()
        raise
    acknowledged: list[str] = []
    stop = threading.Event()

    def sign_up(thread: int) -> None:
        n = 0
        while not stop.is_set():
            email = f"load{thread}-{n}@example.com"
            n += 1
            request = urllib.request.Request(f"http://127.0.0.1:{port}/subscribe", data=f'{{"email": "{email}"}}'.encode(),
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    if response.status == 202:
                        acknowledged.append(email)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # no answer, or an error: nothing was promised

    try:
        _wait_for_port(port)
        threads = [threading.Thread(target=sign_up, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acknowledged) >= 25, 60, "25 signups under load")
        [victim, _] = wait_until(lambda: _children(web.pid) if len(_children(web.pid)) == 2 else None, 30,
                                 "two gunicorn workers")
        os.kill(victim, signal.SIGKILL)  # a gunicorn worker dies mid-request; the arbiter starts another
        worker.kill()
        killed_at = len(acknowledged)
        wait_until(lambda: len(_children(web.pid)) == 2 and victim not in _children(web.pid), 30,
                   "the gunicorn arbiter replacing its killed worker")
        wait_until(lambda: len(acknowledged) >= killed_at + 25, 60, "25 more signups after the kills")
        stop.set()
        for t in threads:
            t.join()

        app = make_app(tmp_path, **stack_overrides(env))
        with app.app_context():
            stored = set(db.session.scalars(select(Subscriber.email)))
            assert set(acknowledged) <= stored, f"lost: {sorted(set(acknowledged) - stored)[:5]}"
            worker = Worker(env, tmp_path / "worker2.log", concurrency=2, name="sigkill2")
            wait_until(lambda: count(Delivery, status="queued") + count(Delivery, status="sending") == 0, 90,
                       "the second worker sending every owed confirmation", every=0.5)
            assert count(Delivery, status="sent") == count(Delivery) >= len(acknowledged)  # none failed or lost
            with sink.handler.lock:
                confirmed_by_mail = {r.recipients[0] for r in sink.handler.messages
                                     if "Confirm your" in r.message["Subject"]}
            assert set(acknowledged) <= confirmed_by_mail, f"no mail: {sorted(set(acknowledged) - confirmed_by_mail)[:5]}"
            db.session.remove()
            db.engine.dispose()
    finally:
        stop.set()
        worker.stop()
        web.terminate()
        web.wait(timeout=20)
        log.close()


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"gunicorn did not answer on {port}")


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


# --- connections that died in the pool ---------------------------------------------------------------

def end_the_apps_database_connections(app) -> int:
    """What a restart of PostgreSQL does to the app's pooled connections (from a connection of the test's own)."""
    import psycopg

    libpq = app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq, autocommit=True) as other:
        return other.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchone()[0]


def pings_counted(monkeypatch) -> list[int]:
    pings, ping = [], db.engine.dialect.do_ping
    monkeypatch.setattr(db.engine.dialect, "do_ping", lambda conn: pings.append(1) or ping(conn))
    return pings


def test_a_connection_idle_in_the_pool_is_tested_and_replaced_when_dead(private_pg_app, monkeypatch):
    client, pings = private_pg_app.test_client(), pings_counted(monkeypatch)
    assert client.post("/subscribe", json={"email": "ann@example.com"}).status_code == 202
    assert client.post("/subscribe", json={"email": "bob@example.com"}).status_code == 202
    assert pings == []  # a connection used a moment ago is trusted

    assert end_the_apps_database_connections(private_pg_app) >= 1
    monkeypatch.setattr(extensions, "PING_AFTER_IDLE_SECONDS", 0)  # as after a second in the pool
    assert client.get("/embed").status_code == 200  # reads the lead magnet through the session

    assert pings and count(Subscriber) == 2


def test_a_signup_on_a_connection_that_died_a_moment_ago_is_sent_again(private_pg_app, caplog):
    client = private_pg_app.test_client()
    assert client.post("/subscribe", json={"email": "ann@example.com"}).status_code == 202

    end_the_apps_database_connections(private_pg_app)
    assert client.post("/subscribe", json={"email": "bob@example.com"}).status_code == 202

    assert count(Subscriber) == 2 and count(Delivery) == 2
    assert "connection was lost during a signup" in caplog.text
