"""Fixtures: a fresh app per test on SQLite; PostgreSQL, Redis, a Celery worker and an SMTP server for integration."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from mailer import create_app
from mailer.extensions import db
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.feed_server import FeedServer
from tests.smtp_sink import SmtpSink

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Each run has its own databases and Celery queues, so two runs on one machine never meet.
RUN = os.environ.get("TEST_RUN_ID") or str(os.getpid())
PG_DB = "mailer_test"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SECRET = "test-secret-key"
ERASURE_KEY = "test-erasure-key"
IN_CI = bool(os.environ.get("CI"))


def need_service(name: str, host: str, port: int) -> None:
    """Skip on a developer machine without the service; in CI a missing service is a failure."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        message = f"{name} is not reachable on {host}:{port}; start it (see .ci/run) and rerun"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def make_app(tmp_path: Path, **overrides):
    config = {
        "TESTING": True,
        "SECRET_KEY": SECRET,
        "ERASURE_KEY": ERASURE_KEY,
        "INSTANCE_PATH": str(tmp_path),
        "OUTBOX_DIR": str(tmp_path / "outbox"),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'mailer.db'}",
        "CELERY_BROKER_URL": "memory://",
        "RATELIMIT_ENABLED": False,
        "BASE_URL": "http://mailer.test",
        "EMBED_ORIGINS": ["https://blog.example.com"],
        "SMTP_URL": None,
    }
    config.update(overrides)
    app = create_app(config)
    _apps.append(app)
    return app


_apps: list = []


@pytest.fixture(autouse=True)
def _close_pools_of_apps_made_in_the_test():
    """Every app a test made gives its connections back, even when the test failed half-way."""
    yield
    while _apps:
        with _apps.pop().app_context():
            db.session.remove()
            db.engine.dispose()


def upgrade_schema(app) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """Migrate once; each test starts from a copy of the migrated file."""
    path = tmp_path_factory.mktemp("template")
    upgrade_schema(make_app(path))
    return path / "mailer.db"


@contextmanager
def app_with(tmp_path: Path, sqlite_template: Path, **overrides):
    """An app on a fresh copy of the migrated SQLite database, with `overrides`, inside its app context."""
    shutil.copy(sqlite_template, tmp_path / "mailer.db")
    app = make_app(tmp_path, **overrides)
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(tmp_path, sqlite_template):
    with app_with(tmp_path, sqlite_template) as app:
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def closing():
    """`closing(thing)` returns `thing` and closes it when the test ends, passed or failed: a connection left open
    by a failing test would otherwise fail the next one, under filterwarnings = error."""
    from contextlib import ExitStack
    from contextlib import closing as closes

    with ExitStack() as stack:
        yield lambda thing: stack.enter_context(closes(thing))


def csrf_from(html: bytes | str) -> str:
    text = html.decode() if isinstance(html, bytes) else html
    return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


# --- the real services -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


def fresh_database(name: str) -> str:
    """Create database `name` for this run (dropped when the run ends); returns its SQLAlchemy URL."""
    need_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    name = f"{name}_{RUN}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


@pytest.fixture(scope="session", autouse=True)
def _drop_this_runs_databases():
    yield
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            # Found by name: test modules import this file as tests.conftest, a second copy of its globals.
            names = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"mailer_%_{RUN}",))
            for (name,) in names.fetchall():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.OperationalError:
        pass  # no PostgreSQL: nothing was created


@pytest.fixture(scope="session")
def private_database(tmp_path_factory):
    """A PostgreSQL database no worker sweeps: rows a test owes stay where the test put them."""
    url = fresh_database("mailer_private")
    upgrade_schema(make_app(tmp_path_factory.mktemp("private-db"), SQLALCHEMY_DATABASE_URI=url))
    return url


@pytest.fixture
def private_pg_app(private_database, tmp_path):
    """The app on PostgreSQL, in `private_database` emptied for the test."""
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=private_database)
    truncate_all(app)
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def either_app(request):
    """The app on SQLite, then on PostgreSQL (where some work is done in statements of its own)."""
    return request.getfixturevalue("app" if request.param == "sqlite" else "private_pg_app")


@pytest.fixture(scope="session")
def pg_url():
    return fresh_database(PG_DB)


@pytest.fixture(scope="session")
def redis_url():
    need_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


def build_stack_env(pg_url: str, redis_url: str, smtp_url: str, instance: Path, **extra: str) -> dict[str, str]:
    """The environment that web, worker and beat share in an integration test; migrates the database."""
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "CELERY_BROKER_URL": redis_url,
        "REDIS_URL": redis_url,
        "SMTP_URL": smtp_url,
        "SECRET_KEY": SECRET,
        "ERASURE_KEY": ERASURE_KEY,
        "BASE_URL": "http://mailer.test",
        "MAIL_FROM": "Career Q&A <newsletter@mailer.test>",
        "MAILER_INSTANCE": str(instance),
        "SWEEP_SECONDS": "1",
        "EMBED_ORIGINS": "https://blog.example.com",
        "CELERY_QUEUE": f"mailer-{RUN}-{pg_url.rsplit('/', 1)[1]}",
        **extra,
    }
    upgrade_schema(make_app(instance, SQLALCHEMY_DATABASE_URI=pg_url))
    return env


@pytest.fixture(scope="session")
def stack_env(pg_url, redis_url, smtp, tmp_path_factory) -> dict[str, str]:
    return build_stack_env(pg_url, redis_url, smtp.url, tmp_path_factory.mktemp("instance"))


class Worker:
    """A real `celery -A worker worker` process (with beat embedded) against the test services."""

    def __init__(self, env: dict[str, str], log: Path, concurrency: int = 2, beat: bool = True, name: str = "w1",
                 **settings: str):
        env = {**env, **settings}
        self.log_path = log
        args = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel", "INFO", "-n", f"{name}@%h",
                "--concurrency", str(concurrency), "--without-gossip", "--without-mingle"]
        if beat:
            args += ["--beat", "--schedule", str(log.parent / f"beat-{log.stem}")]
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # no caller holds it yet: its process and log file are ours to close
            raise

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited:\n{self.log()}")
            if "ready." in self.log():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Celery worker did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once: no shutdown, no acks, mails in flight lost."""
        import signal

        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log_file.close()

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if not self._log_file.closed:
            self._log_file.close()


@pytest.fixture(scope="session")
def worker(stack_env, tmp_path_factory):
    w = Worker(stack_env, tmp_path_factory.mktemp("worker") / "worker.log")
    yield w
    w.stop()


def truncate_all(app) -> None:
    """Empty the shared database; the session's worker may be reading it, so a deadlock is tried again."""
    from psycopg.errors import DeadlockDetected
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    with app.app_context():
        for attempt in range(5):
            try:
                db.session.execute(text("TRUNCATE subscriber, consent, delivery, download, post, digest, digest_post, "
                                        "api_token, feed_state, welcome_step, subscriber_import, erased_address, segment, "
                                        "tally, tally_delta RESTART IDENTITY CASCADE"))
                # The steps and magnets as the migrations seed them: a test may have edited them.
                db.session.execute(text("DELETE FROM lead_magnet WHERE slug <> 'handbook'"))
                db.session.execute(text("DELETE FROM upload"))
                db.session.execute(text("INSERT INTO welcome_step (position, delay_hours, template, enabled) VALUES "
                                        "(1, 0, 'welcome', true), (2, 48, 'welcome_2', true), "
                                        "(3, 168, 'welcome_3', true)"))
                db.session.commit()
                break
            except OperationalError as exc:
                db.session.rollback()
                if not isinstance(exc.orig, DeadlockDetected) or attempt == 4:
                    raise
        db.engine.dispose()


def stack_overrides(env: dict[str, str]) -> dict:
    return {
        "SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"], "CELERY_BROKER_URL": env["CELERY_BROKER_URL"],
        "REDIS_URL": env["REDIS_URL"], "SMTP_URL": env["SMTP_URL"], "MAIL_FROM": env["MAIL_FROM"],
        "EMBED_ORIGINS": [env["EMBED_ORIGINS"]], "BASE_URL": env["BASE_URL"], "CELERY_QUEUE": env["CELERY_QUEUE"],
    }


@pytest.fixture
def pg_app(stack_env, smtp, tmp_path):
    """The web app on PostgreSQL + Redis, sharing the database and SMTP server with the worker."""
    app = make_app(tmp_path, **stack_overrides(stack_env))
    truncate_all(app)
    smtp.clear()
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def api(pg_app):
    """/api/v1 of `pg_app` with a fresh bearer token: api.get(path), api.post(path, body)."""
    from mailer.api_tokens import create_token

    token = create_token(db.session, "tests")
    db.session.commit()
    client = pg_app.test_client()

    class Api:
        def get(self, path):
            return client.get(f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"})

        def post(self, path, body=None):
            return client.post(f"/api/v1{path}", json=body or {}, headers={"Authorization": f"Bearer {token}"})

    return Api()


@pytest.fixture
def browser():
    """Headless Chromium (tests/browser.py); missing, it skips the test, or fails it in CI."""
    if not os.path.exists(CHROMIUM):
        (pytest.fail if IN_CI else pytest.skip)(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def feed_server():
    """The blog's feed on 127.0.0.1 (tests/feed_server.py)."""
    server = FeedServer()
    yield server
    server.close()


@pytest.fixture
def admin(client, monkeypatch):
    """A test client signed in to the console; mail owed is not announced (no broker in these tests)."""
    from mailer.outbox import ledger
    from tests.admin_helpers import create_admin, log_in

    monkeypatch.setattr(ledger, "wake", lambda: None)
    create_admin()
    log_in(client)
    return client
