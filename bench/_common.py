"""Shared by the benchmarks: a throwaway PostgreSQL database, smtp-sink, Celery processes, /proc sampling.

Nothing here is imported by the app or the tests; the benchmarks are run by hand (see bench/README.md).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The code measured is the checkout this file belongs to, also when the venv's editable install points elsewhere.
sys.path.insert(0, str(ROOT))
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13")
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
MAIL_FROM = "Career Q&A <newsletter@news.example.com>"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# A post of the size the blog publishes (a Career Q&A answer); its summary is what the digest carries.
POST_TITLE = "How do I manage a team that spans four generations?"
POST_URL = "https://blog.example.com/career-qa/manage-across-generations/"
POST_SUMMARY = (
    "<p>A reader asks: <em>I lead nine people, from a 23-year-old graduate to a colleague two years from "
    "retirement. Meetings feel like two teams talking past each other. What can I change this quarter?</em></p>"
    "<p>Start with how each person wants to hear from you, not with labels. Ask everyone, one to one, how they "
    "prefer feedback, how often, and in what form; write it down and keep to it. Pair people across ages on real "
    "work rather than on a mentoring programme, and make the pairs swap who leads.</p>"
    "<ul><li>Agree on response times per channel.</li><li>Rotate who runs the weekly meeting.</li>"
    "<li>Share the why of each decision, not only the what.</li></ul>"
    "<p>The full answer has the three conversations I would hold first, and the one habit to drop.</p>"
)

log = logging.getLogger("bench")


# --- cleanup on exit, Ctrl-C and SIGTERM ---------------------------------------------------------

class Cleanup:
    """Callbacks run in reverse order on exit; SIGTERM and SIGHUP are turned into KeyboardInterrupt."""

    def __init__(self):
        self._callbacks: list = []
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._interrupt)

    @staticmethod
    def _interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def add(self, callback, *args) -> None:
        self._callbacks.append((callback, args))

    def run(self) -> None:
        # A second Ctrl-C must not cut the cleanup short.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self._callbacks:
                callback, args = self._callbacks.pop()
                try:
                    callback(*args)
                except Exception as exc:  # keep cleaning up the rest
                    print(f"cleanup: {callback.__name__}: {exc}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, previous)


def run_cleanly(run, args) -> int:
    """`run(args, cleanup)`, with everything it started stopped on the way out, also on Ctrl-C or SIGTERM (130)."""
    cleanup = Cleanup()
    try:
        return run(args, cleanup)
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'Ctrl-C'}); stopping what was started", file=sys.stderr)
        return 130
    finally:
        cleanup.run()


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the process group started for `proc` (it and its children), SIGKILL if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # pool children that outlived their parent, if any
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def spawn(args: list[str], cleanup: Cleanup, *, env: dict | None = None, log_path: Path | None = None,
          stdout=None) -> subprocess.Popen:
    """Start a process in its own session (Ctrl-C reaches only us; we stop it) and register its stop."""
    out = log_path.open("wb") if log_path else stdout
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT if log_path else None,
                            start_new_session=True)
    cleanup.add(stop_process, proc)
    return proc


# --- PostgreSQL and Redis ------------------------------------------------------------------------

def sqlalchemy_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"


def libpq_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def fresh_database(name: str, cleanup: Cleanup, keep: bool = False) -> str:
    """Drop and create database `name` (dropped again on exit unless `keep`); returns its SQLAlchemy URL."""
    import psycopg

    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"database name {name!r}: use lower-case letters, digits and _")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    if not keep:
        cleanup.add(drop_database, name)
    return sqlalchemy_url(name)


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def redis_queue_length(url: str, queue: str = "celery") -> int:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.llen(queue))
    finally:
        client.close()


def stack_env(database_url: str, smtp_port: int, instance: Path, **extra: str) -> dict[str, str]:
    """What worker, beat, `mailer db upgrade` and the in-process app share."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILER_", "SMTP_", "CELERY_"))}
    env.update({
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": BROKER_URL,
        "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "ERASURE_KEY": "bench-erasure-key-0123456789abcdef",  # required outside development
        "BASE_URL": "https://news.example.com",
        "MAIL_FROM": MAIL_FROM,
        "MAILER_INSTANCE": str(instance),
        "SWEEP_SECONDS": "1",
    })
    env.pop("REDIS_URL", None)
    env.pop("SEND_RATE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(extra)
    return env


def migrate(env: dict) -> None:
    """`mailer db upgrade`, the way an operator runs it."""
    result = subprocess.run([str(BIN / "mailer"), "db", "upgrade"], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"mailer db upgrade failed:\n{result.stdout}\n{result.stderr}")


def insert_subscribers(libpq: str, count: int, start: int = 1) -> float:
    """`count` confirmed subscribers in one set-based statement (two in three have a name); returns seconds."""
    import psycopg

    started = time.monotonic()
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO subscriber (email, name, status, created_at, updated_at, confirmed_at, welcome_step)
            SELECT 'reader' || g || '@example.org',
                   CASE WHEN g %% 3 = 0 THEN NULL ELSE 'Reader ' || g END,
                   'confirmed', now() - interval '30 days', now() - interval '30 days',
                   now() - interval '30 days', 3
            FROM generate_series(%(start)s::int, %(stop)s::int) AS g
            """,
            {"start": start, "stop": start + count - 1},
        )
        # Set hint bits and statistics now, so that the first timed scan of the table does not pay for them.
        conn.execute("VACUUM (ANALYZE) subscriber")
    return time.monotonic() - started


def make_app(env: dict):
    """The app of the given environment, in this process (as `mailer` would build it)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.update(env)
    from mailer import create_app

    return create_app()


def add_post(app, title: str = POST_TITLE, url: str = POST_URL) -> int:
    from mailer.extensions import db
    from mailer.posts.store import add_post as store

    with app.app_context():
        post = store(db.session, title, url, POST_SUMMARY)
        db.session.commit()
        return post.id


# --- smtp-sink -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """Postfix's smtp-sink on a loopback port: accepts every mail and throws it away, counting them (-c)."""

    def __init__(self, cleanup: Cleanup, port: int | None = None):
        self.port = port or free_port()
        args = [SMTP_SINK, "-c"]
        if os.geteuid() == 0:
            args += ["-u", "root"]  # smtp-sink insists on a user to switch to when started as root
        args += [f"127.0.0.1:{self.port}", "1000"]
        self.proc = spawn(args, cleanup, stdout=subprocess.PIPE)
        self.count = 0
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"smtp-sink did not start on 127.0.0.1:{self.port}")
                time.sleep(0.05)

    def _read(self) -> None:
        # -c writes "sess=N quit=N mesg=N\r" whenever a message or a session ends. Read 20 times a second, not
        # at every line: counting must not take the CPU that the senders being measured need.
        pattern = re.compile(rb"mesg=(\d+)")
        tail = b""
        fd = self.proc.stdout.fileno()
        while True:
            time.sleep(0.05)
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return
            tail = (tail + chunk)[-256:]
            found = pattern.findall(tail)
            if found:
                with self._changed:
                    self.count = int(found[-1])
                    self._changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.count >= count, timeout)

    @property
    def pid(self) -> int:
        return self.proc.pid


def smtp_source(port: int, message_file: Path, messages: int, sessions: int) -> float:
    """smtp-source sending `messages` copies of `message_file` over `sessions` reused connections; seconds."""
    args = [SMTP_SOURCE, "-d", "-s", str(sessions), "-m", str(messages), "-F", str(message_file),
            "-f", "newsletter@news.example.com", "-t", "reader@example.org", f"127.0.0.1:{port}"]
    started = time.monotonic()
    subprocess.run(args, check=True)
    return time.monotonic() - started


def wire_file(message_bytes: bytes, path: Path) -> int:
    """Write a message for `smtp-source -F` (LF lines; it sends them CRLF-terminated); returns the DATA size."""
    text = message_bytes.replace(b"\r\n", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    path.write_bytes(text)
    return len(text.replace(b"\n", b"\r\n"))


# --- Celery processes ----------------------------------------------------------------------------

def start_worker(env: dict, workdir: Path, cleanup: Cleanup, name: str, extra: list[str] | None = None):
    """`celery -A worker worker --loglevel INFO` (as docker-compose.yml runs it), default pool and concurrency."""
    log_path = workdir / f"{name}.log"
    args = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel", "INFO", "-n", f"{name}@%h",
            *(extra or [])]
    proc = spawn(args, cleanup, env=env, log_path=log_path)
    return proc, log_path


def start_beat(env: dict, workdir: Path, cleanup: Cleanup):
    log_path = workdir / "beat.log"
    args = [sys.executable, "-m", "celery", "-A", "worker", "beat", "--loglevel", "INFO",
            "--schedule", str(workdir / "celerybeat-schedule")]
    return spawn(args, cleanup, env=env, log_path=log_path), log_path


def wait_ready(proc: subprocess.Popen, log_path: Path, marker: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{log_path.stem} exited:\n{log_path.read_text(errors='replace')[-4000:]}")
        if marker in log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise SystemExit(f"{log_path.stem} not ready after {timeout}s:\n{log_path.read_text(errors='replace')[-4000:]}")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def wait_pool(pid: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(pid)
        if kids:
            time.sleep(0.5)  # let the whole pool come up
            return children(pid)
        time.sleep(0.1)
    raise SystemExit("the worker started no pool processes")


# --- /proc sampling ------------------------------------------------------------------------------

def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB; (0, 0) for a process that is gone."""
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def pids_named(comm: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == comm:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def wait_quiet(max_busy: float = 0.15, timeout: float | None = None, window: float = 3) -> float:
    """Wait until the machine's CPU use over `window` seconds is below `max_busy` (other people's test runs
    share it); returns the last measured share. Gives up after `timeout` (BENCH_QUIET_TIMEOUT, 900 s: 0 for
    runs that alternate with a baseline, which share the noise anyway) and says so."""
    if timeout is None:
        timeout = float(os.environ.get("BENCH_QUIET_TIMEOUT", 900))
    deadline, said = time.monotonic() + timeout, False
    while True:
        busy0, total0 = machine_busy_seconds()
        time.sleep(window)
        busy1, total1 = machine_busy_seconds()
        share = (busy1 - busy0) / max(total1 - total0, 1e-9)
        if share <= max_busy:
            return share
        if time.monotonic() > deadline:
            print(f"  NOTE: the machine is still {share:.0%} busy with other work; measuring anyway", file=sys.stderr)
            return share
        if not said:
            print(f"  waiting for the machine to be quiet ({share:.0%} busy with other processes)", file=sys.stderr)
            said = True


PG_SHARED = ("checkpointer", "background writer", "walwriter", "autovacuum launcher", "archiver",
             "logical replication launcher", "stats collector")


def postgres_pids(database: str) -> list[int]:
    """The PostgreSQL processes working for `database`: its backends and autovacuum workers, plus the shared
    background processes (WAL writer, checkpointer, ...). Other databases' backends (other people's test
    runs on the same server) are left out, so they count as other processes."""
    found = []
    for pid in pids_named("postgres"):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if not title.startswith("postgres:"):
            found.append(pid)  # the postmaster
        elif f" {database} " in f"{title} " or title.endswith(PG_SHARED):
            found.append(pid)
    return found


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


class CpuSnapshot:
    """CPU seconds per group of processes, to split the machine's work per mail afterwards."""

    def __init__(self, groups: dict[str, list[int]]):
        self.at = time.monotonic()
        self.groups = {name: {pid: cpu_seconds(pid) for pid in pids} for name, pids in groups.items()}
        self.machine = machine_busy_seconds()

    @staticmethod
    def delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
        out = {}
        for name, pids in after.groups.items():
            earlier = before.groups.get(name, {})
            out[name] = sum(max(0.0, sec - earlier.get(pid, 0.0)) for pid, sec in pids.items())
        out["other (processes, irq)"] = max(0.0, after.machine[0] - before.machine[0] - sum(out.values()))
        out["machine (all processes)"] = after.machine[0] - before.machine[0]
        out["_wall"] = after.at - before.at
        out["_capacity"] = (after.machine[1] - before.machine[1])
        return out


class RssSampler(threading.Thread):
    """Samples VmRSS and VmHWM of a worker's main process and its children every `interval` seconds.

    `reset_peaks()` (at the start of the sending) writes 5 to /proc/<pid>/clear_refs, which resets VmHWM to the
    current RSS: VmHWM read afterwards is the peak of the sending, including spikes between two samples,
    not the peak of the process's start-up. The start-up peak is kept for the report.
    """

    def __init__(self, main_pid: int, interval: float = 0.5, extra: dict[int, str] | None = None):
        super().__init__(daemon=True)
        self.main_pid, self.interval = main_pid, interval
        self.labels: dict[int, str] = {main_pid: "worker main", **(extra or {})}
        self.peak_hwm: dict[int, int] = {}
        self.peak_rss: dict[int, int] = {}
        self.first_rss: dict[int, int] = {}
        self.startup_hwm: dict[int, int] = {}
        self.hwm_reset = False
        self.timeline: list[tuple[float, dict[int, int]]] = []
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)
        self.sample()

    def pids(self) -> list[int]:
        return list(dict.fromkeys([self.main_pid, *children(self.main_pid),
                                   *[p for p in self.labels if p != self.main_pid]]))

    def reset_peaks(self) -> bool:
        """From now on, measure the peak of what follows; False if the kernel refused (VmHWM is then lifetime)."""
        with self._lock:
            ok = True
            for pid in self.pids():
                self.startup_hwm[pid] = memory_kb(pid)[1]
                try:
                    Path(f"/proc/{pid}/clear_refs").write_text("5")
                except OSError:
                    ok = False
            self.hwm_reset = ok
            self.peak_hwm.clear()
            self.peak_rss.clear()
            self.first_rss.clear()
            self.timeline.clear()
            self.started = time.monotonic()
        return ok

    def sample(self) -> None:
        with self._lock:
            now = {}
            for pid in self.pids():
                rss, hwm = memory_kb(pid)
                if not rss:
                    continue
                self.labels.setdefault(pid, "pool child")
                self.first_rss.setdefault(pid, rss)
                self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), rss)
                self.peak_hwm[pid] = max(self.peak_hwm.get(pid, 0), hwm)
                now[pid] = rss
            self.timeline.append((time.monotonic() - self.started, now))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def report(self) -> list[tuple[str, int, int, int, int, int]]:
        """(label, pid, start-up VmHWM, RSS at first sample, peak sampled RSS, VmHWM) per process, in kB."""
        return [(self.labels[pid], pid, self.startup_hwm.get(pid, 0), self.first_rss[pid], self.peak_rss[pid],
                 self.peak_hwm[pid])
                for pid in sorted(self.peak_hwm, key=lambda p: (self.labels[p] != "worker main", p))]

    def rss_at(self, seconds: float) -> dict[int, int]:
        """The sample nearest to `seconds` after the start (or the reset)."""
        if not self.timeline:
            return {}
        return min(self.timeline, key=lambda item: abs(item[0] - seconds))[1]


def print_rss(rows, title: str = "worker memory", reset: bool = True) -> int:
    """Prints the table of RssSampler.report(); returns the largest peak (VmHWM) in kB."""
    peak = "peak (VmHWM since reset)" if reset else "peak (VmHWM, lifetime)"
    print(f"  {title} (MB):")
    print(f"    {'process':<14}{'pid':>8}{'start-up peak':>15}{'RSS at start':>14}{'largest sample':>16}{peak:>26}")
    for label, pid, startup, first, sampled, hwm in rows:
        print(f"    {label:<14}{pid:>8}{startup / 1024 if startup else float('nan'):>15.1f}{first / 1024:>14.1f}"
              f"{sampled / 1024:>16.1f}{hwm / 1024:>26.1f}")
    return max(row[-1] for row in rows) if rows else 0


def workdir(prefix: str, cleanup: Cleanup, keep: bool = False) -> Path:
    """A temporary directory for logs, the instance and beat's schedule (removed on exit unless `keep`)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if not keep:
        cleanup.add(shutil.rmtree, path, True)
    return path


class Stack(NamedTuple):
    work: Path
    sink: Sink
    env: dict
    libpq: str


def sending_stack(title: str, db: str, cleanup: Cleanup, keep: bool = False) -> Stack:
    """A work directory, smtp-sink and a fresh database for a sending benchmark, with its heading printed."""
    print(f"{title}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {machine_line()}")
    work = workdir(f"{db}-", cleanup, keep=keep)
    sink = Sink(cleanup)
    database_url = fresh_database(db, cleanup, keep=keep)
    libpq = libpq_url(db)
    print(f"  PostgreSQL: {pg_settings(libpq)}")
    return Stack(work, sink, stack_env(database_url, sink.port, work / "instance"), libpq)


def machine_line() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return f"{os.cpu_count()} CPUs ({model}), {mem} MB RAM, Python {sys.version.split()[0]}"


def pg_settings(libpq: str) -> str:
    import psycopg

    names = ("server_version", "shared_buffers", "synchronous_commit", "fsync", "max_wal_size")
    with psycopg.connect(libpq) as conn:
        rows = dict(conn.execute("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                                 [list(names)]).fetchall())
    return ", ".join(f"{n}={rows.get(n)}" for n in names)


def signup_app(db_name: str, cleanup: Cleanup, prefix: str):
    """The app as the signup benchmarks run it in one process: a fresh database, production settings, the
    per-client limit raised and one network allowed the whole confirmation cap (every signup comes from this
    machine), Redis for rate limits and the broker."""
    work = workdir(prefix, cleanup)
    env = stack_env(fresh_database(db_name, cleanup), free_port(), work / "instance",
                    SIGNUP_RATE_LIMIT="1000000/minute", CONFIRMATION_NETWORK_SHARE="1", MAILER_ENV="production",
                    REDIS_URL=BROKER_URL)
    flush_redis(BROKER_URL)
    migrate(env)
    os.environ.update(env)
    from bench.loadtest import _app

    return _app()
