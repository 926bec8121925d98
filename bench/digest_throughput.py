"""Digest throughput: how fast the default Celery worker sends a digest, against the raw SMTP ceiling.

    .venv/bin/python bench/digest_throughput.py [--subscribers 100000] [--source-messages N] [--concurrency N]

1. A fresh PostgreSQL database (`mailer db upgrade`), N confirmed subscribers (one INSERT … SELECT over
   generate_series), one post; Postfix's smtp-sink on a loopback port accepts and discards every mail.
2. `celery -A worker worker --loglevel INFO` (default pool and concurrency) and `celery -A worker beat`
   (SWEEP_SECONDS=1), broker Redis db 13 (flushed first).
3. Trigger: `digests.create_digest` + commit + `ledger.wake()` in an app made by `mailer.create_app()` with
   the same environment, the way `mailer digest send` does it. Timed from the trigger until smtp-sink has
   accepted N mails, then until the ledger has no row queued or sending.
4. Baseline: smtp-source sends N copies of one real digest message (composed by the app from a delivery row of
   this digest, so the same size) to the same sink over as many reused connections as the worker has pool
   processes. The ratio of the two rates says how close the mailer gets to what SMTP alone allows.
5. Peak RSS (VmHWM) of the worker's main process and pool children while sending, CPU seconds per group
   of processes (worker, PostgreSQL, Redis, beat, smtp-sink) divided by the number of mails.

Everything it starts is stopped on exit (also on Ctrl-C), and the database is dropped (unless --keep).
Targets from the issue "digests at scale": ratio >= 0.5, RSS <= 150 MB per worker process.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TARGET_RATIO = 0.5
TARGET_RSS_MB = 150
STALL_SECONDS = 120


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=100_000, help="confirmed subscribers (default 100000)")
    p.add_argument("--source-messages", type=int, default=None,
                   help="messages smtp-source sends for the ceiling (default: as many as subscribers)")
    p.add_argument("--source-runs", type=int, default=3,
                   help="smtp-source runs; the ceiling is the best of them (default 3)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="worker pool size (default: Celery's default, the number of CPUs)")
    p.add_argument("--py-spy", type=float, default=0, metavar="SECONDS",
                   help="sample the pool processes with py-spy for SECONDS from 20%% of the send (perturbs the rate: "
                        "use a separate run) and print where their CPU goes per mail")
    p.add_argument("--db", default="mailer_bench_throughput", help="database to create and drop")
    p.add_argument("--keep", action="store_true", help="keep the database and the work directory")
    return p.parse_args(argv)


def ledger_counts(libpq: str, digest_id: int) -> dict[str, int]:
    import psycopg

    with psycopg.connect(libpq) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM delivery WHERE digest_id = %s GROUP BY status",
                                 [digest_id]).fetchall())


def compose_one(app, digest_id: int) -> bytes:
    """One real message of the digest, as the worker builds it (compose + SMTP line endings)."""

    from sqlalchemy import select

    from mailer.extensions import db
    from mailer.models import Delivery, Subscriber
    from mailer.outbox.compose import compose

    with app.app_context():
        # A subscriber with a name: the longer greeting, so the sample is not the smallest message.
        delivery = db.session.scalars(select(Delivery).where(Delivery.digest_id == digest_id)
                                      .order_by(Delivery.id).limit(1)).one()
        subscriber = db.session.get(Subscriber, delivery.subscriber_id)
        data = compose(delivery, subscriber).data  # exactly what the worker puts on the wire
        db.session.remove()
        return data


class PySpy:
    """`py-spy record --format raw` on each pool process for a while; then CPU per mail by step of the send."""

    RATE = 100  # samples per second per process

    def __init__(self, pids: list[int], seconds: float, work: Path, sink: c.Sink):
        import shutil
        import subprocess

        exe = shutil.which("py-spy") or str(c.BIN / "py-spy")
        self.sink, self.seconds = sink, seconds
        self.files = [work / f"py-spy-{pid}.txt" for pid in pids]
        self.procs = [subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                        "--rate", str(self.RATE), "--format", "raw", "--nolineno", "--nonblocking", "--idle",
                                        "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                      for pid, out in zip(pids, self.files)]
        self.count_before, self.started = sink.count, time.monotonic()
        self.count_after = None

    def tick(self) -> None:
        """Call often: notes the sink's count when the sampling window ends."""
        if self.count_after is None and time.monotonic() - self.started >= self.seconds:
            self.count_after = self.sink.count

    def report(self) -> None:
        for proc in self.procs:
            proc.wait()
        mails = (self.sink.count if self.count_after is None else self.count_after) - self.count_before
        steps, leaves, total = {}, {}, 0
        for path in self.files:
            if not path.exists():
                print(f"  py-spy wrote nothing to {path} (permission to ptrace?)")
                return
            for line in path.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                frames, n = stack.split(";"), int(count)
                total += n
                step = classify(frames)
                if frames[-1].split(" (")[0] in WAITS:
                    step += " [waiting]"
                steps[step] = steps.get(step, 0) + n
                leaves[frames[-1]] = leaves.get(frames[-1], 0) + n
        # Wall time of the pool processes over the window, shared out over the mails all of them sent meanwhile.
        mails = max(mails, 1)
        per_mail = lambda n: n / self.RATE / mails * 1000  # noqa: E731
        print(f"  py-spy --idle, {len(self.files)} pool processes x {self.seconds:.0f} s, {mails} mails sent meanwhile: "
              f"{per_mail(total):.2f} ms of pool-process time per mail (wall; [waiting] = blocked on a socket)")
        for step, n in sorted(steps.items(), key=lambda kv: -kv[1]):
            if n / total >= 0.002:
                print(f"    {step:<66}{per_mail(n):6.2f} ms/mail {n / total:6.1%}")
        print("    top functions by own samples:")
        for leaf, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:15]:
            print(f"      {leaf[:90]:<90}{per_mail(n):6.2f} ms/mail")
        print(f"    raw stacks: {' '.join(str(p) for p in self.files)}")


# Leaf frames where a pool process is blocked, not computing (psycopg's wait runs its C loop around poll()).
WAITS = {"Connection.wait", "SocketIO.readinto", "socket.recv", "socket.recv_into", "select", "poll",
         "_recv", "recv", "read", "_read"}


def _short(frame: str) -> str:
    return frame.split(" (")[0].rsplit(".", 1)[-1]


def classify(frames: list[str]) -> str:
    """The step of the send a sampled stack belongs to, from the calls made by sender.send_claimed."""
    short = [_short(f) for f in frames]

    def callee_of(name: str, path_part: str) -> tuple[str, str] | None:
        for i, f in enumerate(frames):
            if short[i] == name and path_part in f:
                return (short[i + 1], frames[i + 1]) if i + 1 < len(frames) else ("(itself)", "")
        return None

    deeper = ";".join(frames)
    if callee_of("_prepare", "outbox") is not None:
        name, _ = callee_of("_prepare", "outbox")
        if name == "compose":
            return "compose: the message's bytes from the digest's frame"
        if name == "status":
            return "ledger: halted-digest check"
        return "_prepare: checks, other"
    if callee_of("_conclude", "outbox") is not None:
        name, frame = callee_of("_conclude", "outbox")
        if name in ("info", "_log") and "logging" in frame:
            return "a log line per mail"
        if name == "count_mail":
            return "metrics: count the mail"
        return "ledger: record the result"
    found = callee_of("_send_window", "outbox")
    if found is not None:
        name, frame = found
        if name == "send_all" and "transport" in frame:
            if "create_default_context" in deeper:
                return "SMTP: ssl.create_default_context() on connect"
            if "dkim" in deeper:
                return "SMTP: DKIM signature"
            return "SMTP: the window's transactions (pipelined)"
        if name in ("_envelope_sender", "envelope_sender", "<listcomp>") and "verp" in deeper:
            return "envelope sender (VERP)"
        if "metric" in deeper:
            return "metrics: SMTP time"
        return "_send_window: other"
    found = callee_of("send_claimed", "outbox")
    if found is not None:
        if found[0] == "close":
            return "SMTP: QUIT at the end of the batch"
        if found[0] == "__init__" and "_Batch" in deeper:
            return "ledger: read the batch's rows and subscribers"
        if found[0] == "write":
            return "ledger: write the window's sent results"
        return "send_claimed: other"
    if callee_of("deliver_due", "outbox") is not None:
        return "ledger: claim the batch (UPDATE … FOR UPDATE SKIP LOCKED)"
    if "advance_welcome" in deeper:
        return "beat's welcome-step task"
    return "Celery: waiting for, receiving and acknowledging tasks"


def run(args, cleanup: c.Cleanup) -> int:
    n = args.subscribers
    work, sink, env, libpq = c.sending_stack("digest throughput", args.db, cleanup, keep=args.keep)
    started = time.monotonic()
    c.migrate(env)
    print(f"  mailer db upgrade: {time.monotonic() - started:.1f} s")
    print(f"  {n} confirmed subscribers inserted in {c.insert_subscribers(libpq, n):.1f} s")
    app = c.make_app(env)
    c.add_post(app)

    c.flush_redis(c.BROKER_URL)
    cleanup.add(c.flush_redis, c.BROKER_URL)
    beat, beat_log = c.start_beat(env, work, cleanup)
    extra = ["--concurrency", str(args.concurrency)] if args.concurrency else []
    worker, worker_log = c.start_worker(env, work, cleanup, "bench-throughput", extra)
    c.wait_ready(worker, worker_log, "ready.")
    c.wait_ready(beat, beat_log, "Sending due task")
    pool = c.wait_pool(worker.pid)
    print(f"  worker pid {worker.pid}, pool processes {pool}; beat pid {beat.pid}; smtp-sink 127.0.0.1:{sink.port}")
    time.sleep(2)  # a few idle sweeps, so that start-up work is not counted
    c.wait_quiet()  # other people's test runs share the machine: start when it is quiet, report what ran meanwhile

    sampler = c.RssSampler(worker.pid)
    sampler.start()
    groups = lambda: {"worker pool": c.children(worker.pid), "worker main": [worker.pid], "beat": [beat.pid],  # noqa: E731
                      "postgres": c.postgres_pids(args.db), "redis": c.pids_named("redis-server"),
                      "smtp-sink": [sink.pid], "this script": [os.getpid()]}
    sampler.reset_peaks()
    cpu_before = c.CpuSnapshot(groups())
    sink_before = sink.count

    # --- the trigger: what `mailer digest send` does ---
    from mailer.extensions import db
    from mailer.outbox import ledger
    from mailer.posts import digests

    t_trigger = time.monotonic()
    with app.app_context():
        digest = digests.create_digest(db.session)
        db.session.commit()
        digest_id, recipients = digest.id, digest.recipients
        ledger.wake()
        db.session.remove()
    t_committed = time.monotonic()
    print(f"  digest {digest_id} owed to {recipients} subscribers: create_digest + commit "
          f"{t_committed - t_trigger:.2f} s")
    if recipients != n:
        print(f"  WARNING: {recipients} deliveries owed, {n} expected", file=sys.stderr)

    sink.wait_for(sink_before + 1, timeout=STALL_SECONDS)
    t_first = time.monotonic()
    spy = None
    last_snap = cpu_before
    last_report, last_count, last_progress_at = t_trigger, 0, time.monotonic()
    progress = []  # (seconds after trigger, mails accepted by the sink)
    while True:
        sink.wait_for(sink_before + recipients, timeout=1)
        now, done = time.monotonic(), sink.count - sink_before
        progress.append((now - t_trigger, done))
        if done > last_count:
            last_progress_at = now
        if done >= recipients:
            break
        if args.py_spy and spy is None and done >= recipients // 5:
            spy = PySpy(c.children(worker.pid), args.py_spy, work, sink)
        if spy is not None:
            spy.tick()
        if now - last_progress_at > STALL_SECONDS:
            print(f"  STALLED at {done}/{recipients}; worker log tail:\n"
                  f"{worker_log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
            return 1
        if now - last_report >= 10:
            # Per interval: the pool's CPU per mail (does a mail cost more as the ledger fills?) and how busy
            # the machine was with processes other than ours (does the rate drop because others took the CPU?).
            snap = c.CpuSnapshot(groups())
            cpu = c.CpuSnapshot.delta(last_snap, snap)
            mails = max(done - last_count, 1)
            print(f"  {now - t_trigger:6.0f} s  {done:>8} sent  {mails / (now - last_report):7.0f}/s  "
                  f"pool CPU {cpu['worker pool'] / mails * 1000:5.2f} ms/mail  "
                  f"PostgreSQL {cpu['postgres'] / mails * 1000:5.2f} ms/mail  "
                  f"others {cpu['other (processes, irq)'] / cpu['_capacity']:4.0%} of the CPUs  "
                  f"celery queue {c.redis_queue_length(c.BROKER_URL)}")
            last_report, last_count, last_snap = now, done, snap
    t_sink_done = time.monotonic()
    cpu_after = c.CpuSnapshot(groups())
    while True:  # the ledger: every row's result committed
        counts = ledger_counts(libpq, digest_id)
        if not counts.get("queued") and not counts.get("sending"):
            break
        time.sleep(0.05)
    t_ledger_done = time.monotonic()
    queue_left = c.redis_queue_length(c.BROKER_URL)
    sampler.stop()

    elapsed = t_sink_done - t_trigger
    mailer_rate = recipients / elapsed
    sending_rate = recipients / (t_sink_done - t_committed)
    print(f"  ledger: {counts}; every result committed {t_ledger_done - t_trigger:.1f} s after the trigger; "
          f"{queue_left} deliver_due tasks left in the queue")
    print(f"  first mail accepted {t_first - t_committed:.2f} s after the commit")
    tenth = recipients // 10

    def at(count):
        return next(t for t, d in progress if d >= count)

    print(f"  pace: first 10% at {tenth / at(tenth):.0f}/s, last 10% at "
          f"{tenth / (elapsed - at(recipients - tenth)):.0f}/s")
    peak_kb = c.print_rss(sampler.report(), "worker memory while sending", reset=sampler.hwm_reset)
    cpu = c.CpuSnapshot.delta(cpu_before, cpu_after)
    print(f"  CPU while sending ({cpu['_wall']:.1f} s wall, {cpu['_capacity']:.1f} CPU-s available):")
    for name, seconds in cpu.items():
        if not name.startswith("_"):
            print(f"    {name:<24}{seconds:8.1f} CPU-s  {seconds / recipients * 1000:6.2f} ms/mail")
    if spy is not None:
        spy.report()
    warnings = [line for line in worker_log.read_text(errors="replace").splitlines()
                if " WARNING " in line or " ERROR " in line or "Traceback" in line]
    if warnings:
        print(f"  worker log: {len(warnings)} warning/error lines, first: {warnings[0][:300]}")

    # --- the ceiling: smtp-source, same message size, same number of connections ---
    c.stop_process(beat)
    c.stop_process(worker)
    message = compose_one(app, digest_id)
    size = c.wire_file(message, work / "digest.eml")
    sessions = len(pool)
    m = args.source_messages or recipients
    rates = []
    for _ in range(args.source_runs):
        c.wait_quiet()
        before = sink.count
        seconds = c.smtp_source(sink.port, work / "digest.eml", m, sessions)
        if not sink.wait_for(before + m, timeout=30):
            print(f"  WARNING: the sink counted {sink.count - before} of {m} smtp-source messages", file=sys.stderr)
        rates.append(m / seconds)
    source_rate = max(rates)
    ratio = mailer_rate / source_rate

    print()
    print(f"RESULT digest of {recipients} mails, {size} bytes each (DATA, CRLF), {sessions} worker processes")
    print(f"  mailer (trigger -> sink has all): {elapsed:8.1f} s  {mailer_rate:8.0f} mails/s"
          f"   (from the commit: {sending_rate:.0f}/s)")
    print(f"  smtp-source, {sessions} connections:   {m / source_rate:8.1f} s  {source_rate:8.0f} mails/s  "
          f"({m} messages; best of {len(rates)} runs: {', '.join(f'{r:.0f}' for r in rates)}/s)")
    print(f"  ratio mailer / smtp-source: {ratio:.3f}  (target >= {TARGET_RATIO}: "
          f"{'met' if ratio >= TARGET_RATIO else 'NOT met'})")
    print(f"  peak RSS of a worker process: {peak_kb / 1024:.1f} MB  (target <= {TARGET_RSS_MB} MB: "
          f"{'met' if peak_kb / 1024 <= TARGET_RSS_MB else 'NOT met'})")
    if args.keep:
        print(f"  kept: database {args.db}, work directory {work}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    return c.run_cleanly(run, args)


if __name__ == "__main__":
    os.chdir(c.ROOT)
    sys.exit(main())
