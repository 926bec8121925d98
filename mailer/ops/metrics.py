"""Prometheus metrics: counters where things happen, gauges read from the database when scraped.

Several processes (gunicorn workers, Celery pool children) count into files under PROMETHEUS_MULTIPROC_DIR
when it is set; prometheus-client picks that mode when it is first imported, so the variable must be in the
environment before the process starts. See the README, Operations.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text

from .. import redis_store
from ..extensions import db
from ..models import Delivery, Digest, DigestStatus, utcnow

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
if MULTIPROC_DIR:
    os.makedirs(MULTIPROC_DIR, exist_ok=True)


# Created on first use: a process that never counts (beat, a CLI command, a health check) leaves no files behind.
@cache
def signups() -> Counter:
    return Counter("mailer_signups", "Signups stored (committed), whatever the address's state")


@cache
def confirmations() -> Counter:
    return Counter("mailer_confirmations", "Confirmation clicks committed (a second click counts again)")


@cache
def mails() -> Counter:
    return Counter("mailer_mails", "Outbox rows handled by a worker, by result", ["kind", "result"])


@cache
def smtp_send_seconds() -> Histogram:
    return Histogram("mailer_smtp_send_seconds", "Time to make and send a mail over SMTP (a window's time shared out)",
                     buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


def count_mail(kind: str, status: str) -> None:
    """Count a row's result from the status sending left it in."""
    result = {"sent": "sent", "failed": "failed", "queued": "retry", "skipped": "skipped"}.get(status)
    if result:
        mails().labels(kind=kind, result=result).inc()


def touch_web_counters() -> None:
    """Expose the web's counters at 0 before the first signup, so rate() has a start (the web only: not the worker)."""
    signups(), confirmations()


# --- beat's last sweep: a Redis key the worker writes and the web reads -----------------------------------------

def record_sweep(config) -> None:
    """Note that beat's sweep ran now; without REDIS_URL there is nowhere the web could read it."""
    if not config.get("REDIS_URL"):
        return
    try:
        redis_store.client(config["REDIS_URL"]).set(redis_store.key(config, "beat_last_sweep"), repr(time.time()))
    except Exception as exc:  # metrics must never stop mail
        log.warning("could not record beat's sweep in Redis (%s); mailer_beat_last_sweep_timestamp_seconds goes stale", exc)


def last_sweep(config) -> float | None:
    if not config.get("REDIS_URL"):
        return None
    value = redis_store.client(config["REDIS_URL"]).get(redis_store.key(config, "beat_last_sweep"))
    return float(value) if value else None


# --- the scrape ------------------------------------------------------------------------------------------------

DUE = text("status IN ('queued', 'sending')")  # literally the predicate of ix_delivery_due, so the planner uses it


class DatabaseCollector:
    """Gauges computed when scraped: the outbox backlog, digests in progress, beat's last sweep."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        with self.app.app_context():
            try:
                yield from self._outbox()
                yield from self._digests()
            except Exception as exc:
                db.session.rollback()
                log.warning("metrics: could not read the database (%s); outbox and digest gauges left out", exc)
            try:
                sweep = last_sweep(self.app.config)
            except Exception as exc:
                log.warning("metrics: could not read beat's last sweep from Redis (%s)", exc)
                sweep = None
            if sweep is not None:
                yield GaugeMetricFamily("mailer_beat_last_sweep_timestamp_seconds",
                                        "Unix time at which a worker last ran beat's outbox sweep", value=sweep)

    def _outbox(self):
        now = utcnow()
        count, oldest = db.session.execute(
            select(func.count(), func.min(Delivery.next_attempt_at)).where(DUE, Delivery.next_attempt_at <= now)
        ).one()
        age = 0.0
        if oldest is not None:
            from ..models import aware

            age = max(0.0, (now - aware(oldest)).total_seconds())
        yield GaugeMetricFamily("mailer_outbox_due", "Outbox rows due now (queued or being sent)", value=count)
        yield GaugeMetricFamily("mailer_outbox_oldest_due_seconds", "How long the oldest due outbox row has waited",
                                value=age)

    def _digests(self):
        from ..posts.digest_results import results

        live = list(db.session.scalars(
            select(Digest).where(Digest.finished_at.is_(None),
                                 Digest.status.in_([DigestStatus.SENDING.value, DigestStatus.PAUSED.value]))
        ))
        family = GaugeMetricFamily("mailer_digest_mails", "Mails of each digest still in progress, by state",
                                   labels=["digest", "state"])
        for result in results(db.session, live):
            for state in ("sent", "failed", "pending"):
                family.add_metric([str(result.id), state], getattr(result, state))
        db.session.commit()  # results() keeps the final counts of a digest that just finished
        yield family


def _process_files(registry: CollectorRegistry) -> None:
    """Every process's counts, read from MULTIPROC_DIR, leaving out a file a process is creating this instant.

    prometheus-client creates a process's file before it sizes it: read in between, the empty file fails the whole
    scrape with a 500 (client_python#1199), as a child's first mail under load showed. An empty file holds nothing yet.
    """
    from prometheus_client import multiprocess

    class Settled(multiprocess.MultiProcessCollector):
        def collect(self):
            return self.merge([path for path in Path(MULTIPROC_DIR).glob("*.db") if _has_content(path)],
                              accumulate=True)

    Settled(registry, path=MULTIPROC_DIR)


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:  # its process exited and the file was removed since the listing
        return False


def registry_for(app) -> CollectorRegistry:
    """This process's metrics (or every process's, in multiprocess mode) plus the database's gauges."""
    registry = CollectorRegistry()
    if MULTIPROC_DIR:
        _process_files(registry)
    else:
        registry.register(_Default())
    registry.register(DatabaseCollector(app))
    return registry


class _Default:
    def collect(self):
        return REGISTRY.collect()


def allowed(req) -> bool:
    """Loopback without a proxy in between, or the METRICS_TOKEN as a bearer token."""
    token = current_app.config.get("METRICS_TOKEN")
    sent = req.headers.get("Authorization", "")
    if token and sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].strip().encode(), token.encode()):
        return True
    return from_this_machine(req)


def from_this_machine(req) -> bool:
    """A request from loopback with no proxy in between; the dev outbox asks the same."""
    if req.headers.get("X-Forwarded-For") or req.headers.get("Forwarded"):
        return False  # a reverse proxy on this host would make every visitor look local
    try:
        return ipaddress.ip_address(req.remote_addr or "").is_loopback
    except ValueError:
        return False


@bp.get("/metrics")
def metrics():
    if not allowed(request):
        return Response("Metrics are served to loopback, or with METRICS_TOKEN as a bearer token "
                        "(Authorization: Bearer <token>).\n", 403, mimetype="text/plain")
    touch_web_counters()
    body = generate_latest(registry_for(current_app._get_current_object()))
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def init_app(app) -> None:
    app.register_blueprint(bp)


# --- the worker: its own endpoint, fed by every pool child ---------------------------------------------------------

def serve_worker_metrics(port: int, addr: str) -> None:
    """Start the worker's metrics endpoint in its main process; pool children count into MULTIPROC_DIR."""
    from prometheus_client import start_http_server

    if not MULTIPROC_DIR:
        raise RuntimeError("WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR in the environment before the worker starts")
    for stale in Path(MULTIPROC_DIR).glob("*.db"):  # counts of an earlier run of this worker
        stale.unlink()
    registry = CollectorRegistry()
    _process_files(registry)
    start_http_server(port, addr=addr, registry=registry)
    log.info("worker metrics on http://%s:%s/metrics", addr, port)


def pool_child_exited(pid: int) -> None:
    if MULTIPROC_DIR:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path=MULTIPROC_DIR)
