"""Mails sent twice when a worker is SIGKILLed mid-digest: this checkout against another, in one run.

    .venv/bin/python bench/sigkill_duplicates.py --baseline PATH [--subscribers 20000] [--concurrency 4]
                                                 [--kills 2] [--rounds 2]

PATH is another checkout of the project (e.g. `git worktree add /tmp/before <commit>`); its code runs under
this virtual environment. For each round, and for each checkout in turn (alternating, so a machine that gets
busier part of the way is shared out evenly):

1. A fresh PostgreSQL database (`mailer db upgrade` of that checkout), N confirmed subscribers, one post; an
   SMTP server in this process (aiosmtpd) that takes every mail and counts each recipient.
2. `celery -A worker worker --concurrency C --beat` of that checkout (SEND_WINDOW left at its default,
   LEASE_SECONDS=5 so that a killed worker's rows come back soon), the digest triggered as `mailer digest send`
   does it.
3. Each time another N/(kills+1) mails have arrived, the worker and its pool are SIGKILLed together and a new
   worker is started; at the end every reader must have the digest, and the mails beyond N are the duplicates.

The duplicates have a floor: a killed process may have sent a mail whose reply it had not read (RFC 5321
4.1.1.4); the goal is at most one per killed pool process (kills x concurrency).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="another checkout of the project, to compare against")
    p.add_argument("--subscribers", type=int, default=20_000)
    p.add_argument("--concurrency", type=int, default=4, help="pool processes of the worker (default 4)")
    p.add_argument("--kills", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    return p.parse_args(argv)


class CountingServer:
    """aiosmtpd on a loopback port: 250 to everything, the recipients counted, nothing parsed."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.received: Counter = Counter()
        self.lock = threading.Lock()
        self.port = c.free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.update(a.lower() for a in envelope.rcpt_tos)
        return "250 2.0.0 queued"

    def total(self) -> int:
        with self.lock:
            return sum(self.received.values())

    def stop(self) -> None:
        if self.controller.loop.is_running():
            self.controller.stop()


def start_worker(checkout: Path, env: dict, work: Path, n: int, concurrency: int, cleanup) -> subprocess.Popen:
    log_path = work / f"worker{n}.log"
    args = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel", "INFO", "-n", f"kill{n}@%h",
            "--concurrency", str(concurrency), "--beat", "--schedule", str(work / f"beat{n}")]
    proc = subprocess.Popen(args, cwd=checkout, env={**env, "PYTHONPATH": str(checkout)},
                            stdout=log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    cleanup.add(c.stop_process, proc)
    c.wait_ready(proc, log_path, "ready.")
    return proc


def trigger_digest(checkout: Path, env: dict) -> None:
    """The digest, as `mailer digest send` owes it, from that checkout's code."""
    code = ("from mailer import create_app\nfrom mailer.extensions import db\n"
            "from mailer.posts.store import add_post\nfrom mailer.posts import digests\nfrom mailer.outbox import ledger\n"
            "app = create_app()\nwith app.app_context():\n"
            "    add_post(db.session, 'A post', 'https://blog.example.com/a-post/', '<p>Summary.</p>')\n"
            "    db.session.commit()\n    digests.create_digest(db.session)\n    db.session.commit()\n    ledger.wake()\n")
    subprocess.run([sys.executable, "-c", code], cwd=checkout, env={**env, "PYTHONPATH": str(checkout)}, check=True)


def one_run(checkout: Path, args, cleanup, label: str) -> tuple[int, float]:
    """Duplicates and seconds for one digest through `kills` SIGKILLs."""
    db = "mailer_bench_sigkill"
    work = c.workdir("sigkill-", cleanup)
    server = CountingServer()
    cleanup.add(server.stop)
    env = c.stack_env(c.fresh_database(db, cleanup), server.port, work / "instance", LEASE_SECONDS="5")
    c.flush_redis(c.BROKER_URL)
    subprocess.run([sys.executable, "-m", "mailer", "db", "upgrade"], cwd=checkout,
                   env={**env, "PYTHONPATH": str(checkout)}, check=True, capture_output=True)
    c.insert_subscribers(c.libpq_url(db), args.subscribers)
    worker = start_worker(checkout, env, work, 0, args.concurrency, cleanup)
    started = time.monotonic()
    trigger_digest(checkout, env)
    step = args.subscribers // (args.kills + 1)
    for kill in range(1, args.kills + 1):
        while server.total() < kill * step:
            if time.monotonic() - started > 600:
                raise SystemExit(f"{label}: stuck at {server.total()} mails")
            time.sleep(0.01)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        worker = start_worker(checkout, env, work, kill, args.concurrency, cleanup)
    while len(server.received) < args.subscribers:
        if time.monotonic() - started > 900:
            raise SystemExit(f"{label}: only {len(server.received)} of {args.subscribers} readers reached")
        time.sleep(0.1)
    seconds = time.monotonic() - started
    time.sleep(1)  # anything still on its way
    duplicates = server.total() - args.subscribers
    c.stop_process(worker)
    server.stop()
    print(f"  {label:<10} {duplicates:>5} sent twice, {seconds:6.1f} s for {args.subscribers} readers "
          f"through {args.kills} SIGKILLs of {args.concurrency} pool processes", flush=True)
    return duplicates, seconds


def run(args, cleanup) -> int:
    here, baseline = c.ROOT, Path(args.baseline).resolve()
    print(f"SIGKILL duplicates, {c.machine_line()}")
    results: dict[str, list[int]] = {"baseline": [], "this": []}
    for _ in range(args.rounds):
        for label, checkout in (("baseline", baseline), ("this", here)):
            results[label].append(one_run(checkout, args, cleanup, label)[0])
    bound = args.kills * args.concurrency
    for label, found in results.items():
        print(f"{label}: duplicates per run {found}; goal at most {bound} (one per killed pool process)")
    return 0


if __name__ == "__main__":
    sys.exit(c.run_cleanly(run, parse_args()))
