"""Ledger scale: owing a digest to 1,000,000 subscribers, and a worker's memory against the list size.

    .venv/bin/python bench/ledger_scale.py [--subscribers 1000000] [--small 10000] [--send-seconds 60]

1. A fresh PostgreSQL database (`mailer db upgrade`), N confirmed subscribers (one INSERT … SELECT over
   generate_series, then VACUUM ANALYZE), one post.
2. Baseline: the same INSERT … SELECT (same columns and values as digests.owe_digest) into a plain copy of
   the delivery table made with `CREATE TABLE … (LIKE delivery INCLUDING DEFAULTS)`: same columns, defaults
   and id sequence, logged like delivery, but no primary key, unique key, indexes or foreign key.
   Unless --no-breakdown, the same again with each one of delivery's indexes / its foreign key alone, to
   show what each costs.
3. `digests.create_digest` + commit in an app made by `mailer.create_app()`: the real statement into the
   real table. Target: <= 30 s for 1M. A CHECKPOINT runs before every timed statement, so that none of them
   pays for the previous one's dirty pages.
4. A worker's memory while sending that digest: `celery -A worker worker` (default pool and concurrency)
   and `celery -A worker beat` send to smtp-sink for --send-seconds while VmRSS/VmHWM of the worker's main
   process and pool children are sampled.
5. A second digest (one more post) timed the same way, with the first digest's rows already in the table.
6. The same memory measurement against a list of --small subscribers (its own database), sent to the end.
Everything it starts is stopped on exit (also on Ctrl-C), and the databases are dropped (unless --keep).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TARGET_SECONDS = 30

BARE_INSERT = """
INSERT INTO {table} (kind, subscriber_id, dedupe_key, payload, status, attempts, next_attempt_at, created_at,
                     digest_id)
SELECT 'digest', subscriber.id, 'digest:' || %(digest)s || ':' || CAST(subscriber.id AS VARCHAR),
       CAST('{{}}' AS JSON), 'queued', 0, now(), now(), %(digest)s
FROM subscriber WHERE subscriber.status = 'confirmed'
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=1_000_000)
    p.add_argument("--small", type=int, default=10_000, help="list size of the memory comparison (default 10000)")
    p.add_argument("--send-seconds", type=float, default=60, help="how long to send the big digest (default 60)")
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-index timings")
    p.add_argument("--db", default="mailer_bench_ledger")
    p.add_argument("--keep", action="store_true", help="keep the databases and the work directory")
    return p.parse_args(argv)


def checkpoint(libpq: str) -> None:
    import psycopg

    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def timed_bare_insert(libpq: str, extra_ddl: list[str], label: str, digest_id: int) -> float:
    """Create bench_bare (LIKE delivery) plus `extra_ddl`, time the INSERT … SELECT with its commit, drop it."""
    import psycopg

    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_bare")
        conn.execute("CREATE TABLE bench_bare (LIKE delivery INCLUDING DEFAULTS)")
        for ddl in extra_ddl:
            conn.execute(ddl)
        conn.execute("CHECKPOINT")
        before = cpu_mark(libpq)
        started = time.monotonic()
        with conn.transaction():
            rows = conn.execute(BARE_INSERT.format(table="bench_bare"), {"digest": digest_id}).rowcount
        seconds = time.monotonic() - started
        others = other_share(before, libpq)
        conn.execute("DROP TABLE bench_bare")
    print(f"    {label:<58}{seconds:7.1f} s  ({rows} rows; other processes used {others:.0%} of the CPUs)")
    return seconds


def cpu_mark(libpq: str) -> c.CpuSnapshot:
    return c.CpuSnapshot({"postgres": c.postgres_pids(libpq.rsplit("/", 1)[1]), "this process": [os.getpid()]})


def other_share(before: c.CpuSnapshot, libpq: str) -> float:
    """Share of the machine's CPUs used since `before` by processes other than ours (this one, our database's)."""
    delta = c.CpuSnapshot.delta(before, cpu_mark(libpq))
    return delta["other (processes, irq)"] / max(delta["_capacity"], 1e-9)


def delivery_structure(libpq: str) -> list[tuple[str, str, str]]:
    """(label, DDL that adds it to bench_bare, definition) for each index and foreign key of delivery."""
    import psycopg

    items = []
    with psycopg.connect(libpq) as conn:
        for name, definition in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'delivery' ORDER BY indexname"):
            ddl = (definition.replace(f"INDEX {name} ON", f"INDEX bench_{name} ON", 1)
                   .replace(" ON public.delivery ", " ON public.bench_bare ", 1))
            items.append((f"index {name}", ddl, definition[definition.index("USING btree") + 12:]))
        for name, definition in conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'delivery'::regclass AND contype = 'f' ORDER BY conname"):
            items.append((f"foreign key {name}", f"ALTER TABLE bench_bare ADD CONSTRAINT bench_{name} {definition}",
                          definition))
    return items


def timed_create_digest(app, libpq: str) -> tuple[float, int, int]:
    from sqlalchemy import text

    from mailer.extensions import db
    from mailer.posts import digests

    checkpoint(libpq)
    with app.app_context():
        db.session.execute(text("SELECT 1"))  # the connection is open before the clock starts
        db.session.commit()
        before = cpu_mark(libpq)
        started = time.monotonic()
        digest = digests.create_digest(db.session)
        db.session.commit()
        seconds = time.monotonic() - started
        result = (seconds, digest.id, digest.recipients, other_share(before, libpq))
        db.session.remove()
    return result


def timed_claim(app, repeats: int = 5) -> tuple[float, str]:
    """Median time of sender.claim_due(50) (rolled back, so the rows stay owed) and the plan's main nodes."""
    import statistics

    from sqlalchemy import event

    from mailer.extensions import db
    from mailer.outbox import sender

    samples, statements = [], []
    with app.app_context():
        capture = lambda conn, cursor, statement, params, context, many: statements.append((statement, params))  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            for _ in range(repeats):
                statements.clear()  # the claim's statements: mail for people first, then the rest
                started = time.monotonic()
                sender.claim_due(db.session, 50)
                samples.append(time.monotonic() - started)
                db.session.rollback()
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        conn = db.session.connection().connection.driver_connection
        plans = []
        for statement, params in statements:
            with conn.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE) " + statement, params)
                plan = [row[0] for row in cur.fetchall()]
            nodes = [line.strip().lstrip("-> ").split("  (")[0] for line in plan
                     if any(k in line for k in ("Scan", "Sort  (", "Sort Method"))]
            plans.append("; ".join(dict.fromkeys(nodes)))
        db.session.rollback()
        db.session.remove()
    return statistics.median(samples), " | then ".join(plans)


def send_and_sample(env: dict, app, sink: c.Sink, work: Path, cleanup: c.Cleanup, name: str, owed: int,
                    seconds: float | None) -> dict:
    """Start worker and beat, wake them, send for `seconds` (or until `owed` mails are out); sample memory."""
    from mailer.outbox import ledger

    c.flush_redis(c.BROKER_URL)
    c.wait_quiet()
    before = sink.count  # beat's first sweep may start the sending before the worker says it is ready
    beat, beat_log = c.start_beat(env, work, cleanup)
    worker, worker_log = c.start_worker(env, work, cleanup, name)
    sampler = c.RssSampler(worker.pid, interval=0.5)
    sampler.start()
    c.wait_ready(worker, worker_log, "ready.")
    sampler.reset_peaks()
    database = env["DATABASE_URL"].rsplit("/", 1)[1]
    groups = lambda: {"worker pool": c.children(worker.pid), "postgres": c.postgres_pids(database)}  # noqa: E731
    cpu_before = c.CpuSnapshot(groups())
    started = time.monotonic()
    with app.app_context():
        ledger.wake()
    sink.wait_for(before + owed, timeout=seconds or 3600)
    elapsed = time.monotonic() - started
    sent = sink.count - before
    cpu = c.CpuSnapshot.delta(cpu_before, c.CpuSnapshot(groups()))
    sampler.stop()
    c.stop_process(beat)
    c.stop_process(worker)
    rows = sampler.report()
    marks = {}
    for mark in (5, 15, 30, 45, 60, 90, 120):
        if mark <= sampler.timeline[-1][0]:
            marks[mark] = max(sampler.rss_at(mark).values(), default=0)
    return {"sent": sent, "elapsed": elapsed, "rows": rows, "marks": marks, "reset": sampler.hwm_reset, "cpu": cpu,
            "peak": max(hwm for *_, hwm in rows)}


def print_cpu(result: dict) -> None:
    cpu, sent = result["cpu"], max(result["sent"], 1)
    print(f"    CPU per mail: worker pool {cpu['worker pool'] / sent * 1000:.2f} ms, PostgreSQL "
          f"{cpu['postgres'] / sent * 1000:.2f} ms; other processes used "
          f"{cpu['other (processes, irq)'] / cpu['_capacity']:.0%} of the CPUs meanwhile")


def run(args, cleanup: c.Cleanup) -> int:
    n = args.subscribers
    work, sink, env, libpq = c.sending_stack("ledger scale", args.db, cleanup, keep=args.keep)
    c.migrate(env)
    c.wait_quiet()
    print(f"  {n} confirmed subscribers inserted (+ VACUUM ANALYZE) in {c.insert_subscribers(libpq, n):.1f} s")
    app = c.make_app(env)
    c.add_post(app)
    cleanup.add(c.flush_redis, c.BROKER_URL)

    print(f"\n1. owing one digest to {n} subscribers (INSERT … SELECT, with its commit)")
    c.wait_quiet()
    bare = timed_bare_insert(libpq, [], "baseline: LIKE delivery, no index, no key", 1)
    breakdown = []
    if not args.no_breakdown:
        for label, ddl, definition in delivery_structure(libpq):
            c.wait_quiet()
            breakdown.append((label, timed_bare_insert(libpq, [ddl], f"  + only {label}", 1) - bare))
            print(f"        ({definition})")
    c.wait_quiet()
    real, digest_id, owed, others = timed_create_digest(app, libpq)
    print(f"    {'digests.create_digest + commit (the delivery table)':<58}{real:7.1f} s  ({owed} rows; "
          f"other processes used {others:.0%} of the CPUs)")
    claim_ms, claim_plan = timed_claim(app)
    print(f"    sender.claim_due(50) with {owed} rows owed: {claim_ms * 1000:.1f} ms (median of 5, rolled back); "
          f"plan: {claim_plan}")
    if breakdown:
        print("    cost of each alone, over the baseline: "
              + "; ".join(f"{label} {cost:+.1f} s" for label, cost in breakdown))

    print(f"\n2. a worker's memory while sending the digest of {owed} for {args.send_seconds:.0f} s")
    big = send_and_sample(env, app, sink, work, cleanup, "bench-ledger-big", owed, args.send_seconds)
    c.print_rss(big["rows"], reset=big["reset"])
    print_cpu(big)
    print(f"    sent {big['sent']} in {big['elapsed']:.0f} s ({big['sent'] / big['elapsed']:.0f}/s); largest RSS "
          f"of a worker process, seconds after it was ready: " + ", ".join(f"{t} s: {kb / 1024:.1f} MB" for t, kb in big["marks"].items()))

    print(f"\n3. a second digest, with the first one's {owed} rows in the table")
    c.add_post(app, title="A second post for the second digest", url=c.POST_URL + "second/")
    c.wait_quiet()
    second, _, owed2, others = timed_create_digest(app, libpq)
    print(f"    {'digests.create_digest + commit':<58}{second:7.1f} s  ({owed2} rows; "
          f"other processes used {others:.0%} of the CPUs)")

    print(f"\n4. the same worker against a list of {args.small}")
    small_db = args.db + "_small"
    small_env = c.stack_env(c.fresh_database(small_db, cleanup, keep=args.keep), sink.port, work / "instance-small")
    c.migrate(small_env)
    c.insert_subscribers(c.libpq_url(small_db), args.small)
    small_app = _app_for(small_env)
    c.add_post(small_app)
    small_owed = timed_create_digest(small_app, c.libpq_url(small_db))[2]
    small_claim_ms, small_plan = timed_claim(small_app)
    print(f"    sender.claim_due(50) with {small_owed} rows owed: {small_claim_ms * 1000:.1f} ms; plan: {small_plan}")
    small = send_and_sample(small_env, small_app, sink, work, cleanup, "bench-ledger-small", small_owed, None)
    c.print_rss(small["rows"], reset=small["reset"])
    print_cpu(small)
    print(f"    sent {small['sent']} in {small['elapsed']:.0f} s ({small['sent'] / small['elapsed']:.0f}/s)")

    print()
    print(f"RESULT owing a digest to {owed} subscribers")
    print(f"  digests.create_digest + commit: {real:6.1f} s   (target <= {TARGET_SECONDS} s: "
          f"{'met' if real <= TARGET_SECONDS else 'NOT met'})")
    print(f"  bare INSERT … SELECT, no index:   {bare:6.1f} s   ratio {real / bare:.2f}")
    print(f"  second digest (table holds {owed} rows): {second:6.1f} s   ratio {second / bare:.2f}")
    print(f"  sender.claim_due(50): {claim_ms * 1000:.1f} ms with {owed} rows owed, {small_claim_ms * 1000:.1f} ms "
          f"with {small_owed}")
    print(f"  peak RSS of a worker process: {big['peak'] / 1024:.1f} MB sending to {owed} "
          f"({big['sent']} sent in {big['elapsed']:.0f} s) vs {small['peak'] / 1024:.1f} MB sending to {small_owed}")
    if args.keep:
        print(f"  kept: databases {args.db} and {small_db}, work directory {work}")
    return 0


def _app_for(env: dict):
    """A second app in this process, for another database (create_app reads os.environ)."""
    saved = dict(os.environ)
    try:
        return c.make_app(env)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main(argv=None) -> int:
    args = parse_args(argv)
    return c.run_cleanly(run, args)


if __name__ == "__main__":
    os.chdir(c.ROOT)
    sys.exit(main())
