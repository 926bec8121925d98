"""GET /metrics: parses as Prometheus text, moves when mail is sent, reads the backlog, and is not public."""
from __future__ import annotations

import time
import urllib.request
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from mailer.extensions import db
from mailer.models import Delivery, Digest, utcnow
from mailer.outbox import ledger
from tests.conftest import Worker, build_stack_env, csrf_from, fresh_database, make_app, stack_overrides
from tests.smtp_sink import _free_port
from tests.waiting import wait_until


def samples(text: str) -> dict:
    """{(name, frozenset(labels)): value} of every sample in an exposition."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(client, **kwargs) -> dict:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"].startswith("text/plain")
    return samples(response.get_data(as_text=True))


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_metrics_parse_and_signups_and_confirmations_count(client, app):
    before = scrape(client)
    assert ("mailer_outbox_due", frozenset()) in before
    assert client.post("/subscribe", json={"email": "counted@example.com"}).status_code == 202
    after = scrape(client)
    assert value(after, "mailer_signups_total") == value(before, "mailer_signups_total") + 1

    from mailer.links import confirm_url
    from mailer.models import Consent

    path = confirm_url(db.session.query(Consent).one().id).removeprefix("http://mailer.test")
    page = client.get(path)
    assert client.post(path, data={"csrf_token": csrf_from(page.data)}).status_code == 200
    confirmed = scrape(client)
    assert value(confirmed, "mailer_confirmations_total") == value(before, "mailer_confirmations_total") + 1


def test_outbox_gauges_count_due_rows_and_the_oldest_age(client, app):
    empty = scrape(client)
    assert value(empty, "mailer_outbox_due") == 0 and value(empty, "mailer_outbox_oldest_due_seconds") == 0
    for n in range(3):
        ledger.queue(db.session, "test", None, f"t:{n}", recipient=f"t{n}@example.com")
    ledger.queue(db.session, "test", None, "later", recipient="later@example.com")
    db.session.execute(update(Delivery).where(Delivery.dedupe_key.like("t:%"))
                       .values(next_attempt_at=utcnow() - timedelta(seconds=600)))
    db.session.execute(update(Delivery).where(Delivery.dedupe_key == "later")
                       .values(next_attempt_at=utcnow() + timedelta(hours=1)))
    db.session.execute(update(Delivery).where(Delivery.dedupe_key == "t:2").values(status="sent"))
    db.session.commit()
    found = scrape(client)
    assert value(found, "mailer_outbox_due") == 2  # sent and not-yet-due rows are not due
    assert 600 <= value(found, "mailer_outbox_oldest_due_seconds") < 660


def test_digest_progress_per_digest_in_progress(client, app):
    digest = Digest(subject="Posts", recipients=3)
    db.session.add(digest)
    db.session.flush()
    for n, status in enumerate(["sent", "failed", "queued"]):
        ledger.queue(db.session, "digest", None, f"d:{n}", recipient=f"d{n}@example.com")
        db.session.execute(update(Delivery).where(Delivery.dedupe_key == f"d:{n}")
                           .values(digest_id=digest.id, status=status))
    db.session.commit()
    found = scrape(client)
    for state in ("sent", "failed", "pending"):
        assert value(found, "mailer_digest_mails", digest=str(digest.id), state=state) == 1


def test_metrics_refused_from_elsewhere_without_the_token(app, client):
    far = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    refused = client.get("/metrics", **far)
    assert refused.status_code == 403 and b"METRICS_TOKEN" in refused.data
    # A reverse proxy on this host makes every visitor look local: forwarded requests need the token.
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403
    app.config["METRICS_TOKEN"] = "s3cret-token"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}, **far).status_code == 403
    scrape(client, headers={"Authorization": "Bearer s3cret-token"}, **far)
    scrape(client)  # loopback still works with a token configured


# --- the real stack: a worker that serves its own metrics -------------------------------------------------------

@pytest.mark.integration
def test_worker_metrics_move_when_mail_is_sent_and_beat_sweeps(redis_url, smtp, tmp_path):
    port = _free_port()
    env = build_stack_env(fresh_database("mailer_metrics"), redis_url, smtp.url, tmp_path,
                          WORKER_METRICS_PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "worker-metrics"))
    worker = Worker(env, tmp_path / "worker.log", concurrency=2, name="metrics")
    try:
        def worker_metrics() -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return samples(response.read().decode())

        before = worker_metrics()
        app = make_app(tmp_path, **stack_overrides(env))
        with app.app_context():
            client = app.test_client()
            for n in range(3):
                assert client.post("/subscribe", json={"email": f"m{n}@example.com"}).status_code == 202
            for n in range(3):
                smtp.wait_for(f"m{n}@example.com", "Confirm", timeout=60)
            deadline = time.monotonic() + 10
            while True:
                found = worker_metrics()
                sent = value(found, "mailer_mails_total", kind="confirmation", result="sent")
                if sent - value(before, "mailer_mails_total", kind="confirmation", result="sent") >= 3 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert sent - value(before, "mailer_mails_total", kind="confirmation", result="sent") == 3
            assert value(found, "mailer_smtp_send_seconds_count") >= 3
            web = scrape(client)
            assert value(web, "mailer_outbox_due") == 0
            deadline = time.monotonic() + 20  # SWEEP_SECONDS=1 in the test stack; a loaded machine may lag
            # Wait for this stack's own sweep: an earlier test's beat may have left an older time under the key.
            while not (value(web, "mailer_beat_last_sweep_timestamp_seconds") or 0) > time.time() - 20 \
                    and time.monotonic() < deadline:
                time.sleep(0.5)
                web = scrape(client)
            last_sweep = value(web, "mailer_beat_last_sweep_timestamp_seconds")
            assert time.time() - 20 < last_sweep <= time.time() + 1
            db.session.remove()
            db.engine.dispose()
    finally:
        worker.stop()


@pytest.mark.integration
def test_under_several_gunicorn_workers_every_scrape_counts_every_signup(redis_url, smtp, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    metrics_dir = tmp_path / "web-metrics"
    env = build_stack_env(fresh_database("mailer_metrics_web"), redis_url, smtp.url, tmp_path,
                          SIGNUP_RATE_LIMIT="100000/minute", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    port, root = _free_port(), Path(__file__).resolve().parent.parent
    with (tmp_path / "gunicorn.log").open("wb") as log:
        web = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--workers", "3",
                                "--bind", f"127.0.0.1:{port}", "mailer:create_app()"],
                               cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            def get(path: str, data: bytes | None = None) -> str:
                headers = {"Content-Type": "application/json", "Connection": "close"}
                request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers)
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.read().decode()

            deadline = time.monotonic() + 30
            while True:
                try:
                    get("/healthz")
                    break
                except OSError:
                    assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                    time.sleep(0.2)
            # Bursts of six at once, until at least two workers have counted signups (one quick worker can
            # take a whole sequence of requests on its own).
            signed_up, counting = 0, set()
            with ThreadPoolExecutor(6) as pool:
                while len(counting) < 2 and signed_up < 120:
                    list(pool.map(lambda n: get("/subscribe", f'{{"email": "w{n}@example.com"}}'.encode()),
                                  range(signed_up, signed_up + 6)))
                    signed_up += 6
                    counting = {pid for pid, signups in signups_by_worker(metrics_dir).items() if signups}
            assert len(counting) >= 2, f"one worker took every signup ({counting}); the test proves nothing"
            for _ in range(6):  # each scrape lands on whichever worker accepts it
                assert value(samples(get("/metrics")), "mailer_signups_total") == signed_up

            killed = next(iter(counting))
            os.kill(killed, signal.SIGKILL)  # its counts must outlive it
            # Replaced: the arbiter has reaped it and run its exit hook, which must keep the counts.
            wait_until(lambda: not _alive(killed) and len(_children(web.pid)) == 3, 30, f"gunicorn replacing {killed}")
            for _ in range(6):
                assert value(samples(get("/metrics")), "mailer_signups_total") == signed_up
        finally:
            web.terminate()
            web.wait(timeout=20)


def _alive(pid: int) -> bool:
    """Still a process (a killed child stays one until its parent reaps it)."""
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid: int) -> list[int]:
    import subprocess

    return [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]


def signups_by_worker(metrics_dir) -> dict[int, float]:
    """mailer_signups_total as each process's own file holds it (counter_<pid>.db)."""
    from prometheus_client.mmap_dict import MmapedDict

    counts = {}
    for path in metrics_dir.glob("counter_*.db"):
        values = MmapedDict.read_all_values_from_file(str(path))
        counts[int(path.stem.split("_")[-1])] = sum(v[1] for v in values if '"mailer_signups_total"' in v[0])
    return counts


def test_a_process_file_being_created_does_not_fail_the_scrape(tmp_path, monkeypatch):
    """prometheus-client creates a process's file before sizing it: a scrape in between read an empty file and
    failed whole (a 500 from the worker's endpoint while a pool child sent its first mail)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    from mailer.ops import metrics

    counts = MmapedDict(str(tmp_path / "counter_101.db"))
    counts.write_value(mmap_key("mailer_mails_total", "mailer_mails_total", ["kind", "result"], ["digest", "sent"],
                                "outbox rows handled"), 7.0, 0.0)
    counts.close()
    (tmp_path / "counter_102.db").touch()  # another child's, this instant
    monkeypatch.setattr(metrics, "MULTIPROC_DIR", str(tmp_path))
    registry = CollectorRegistry()

    metrics._process_files(registry)

    found = samples(generate_latest(registry).decode())
    assert found[("mailer_mails_total", frozenset({"kind": "digest", "result": "sent"}.items()))] == 7.0
