"""Owing a digest at a local time ("09:00" on each reader's clock) against owing it at once, on both databases.

    .venv/bin/python bench/local_time_digest.py [--subscribers 200000] [--zones 400] [--sqlite-only | --pg-only]

For each database: a fresh one (`mailer db upgrade`), N confirmed subscribers, four in five with a time zone
(the first --zones names zoneinfo knows, in turn; the rest without one: the author's), two posts. Then
`digests.create_digest` + commit three times, timed: a digest at once (every row due now), one with
`local_time="09:00"` (one due time per zone, a CASE over the zones grouped by due time in the same INSERT …
SELECT), and one at once again. The rows of the local one are checked against zoneinfo. The PostgreSQL database
is dropped on exit (unless --keep).
"""
from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=200_000)
    p.add_argument("--zones", type=int, default=400)
    p.add_argument("--sqlite-only", action="store_true")
    p.add_argument("--pg-only", action="store_true")
    p.add_argument("--db", default="mailer_bench_local_time")
    p.add_argument("--keep", action="store_true")
    return p.parse_args(argv)


def zones(count: int) -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z)[:count]


def fill_postgresql(libpq: str, count: int, names: list[str]) -> None:
    import psycopg

    c.insert_subscribers(libpq, count)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("UPDATE subscriber SET time_zone = (%(zones)s::text[])[1 + id %% %(n)s] WHERE id %% 5 <> 0",
                     {"zones": names, "n": len(names)})
        conn.execute("VACUUM (ANALYZE) subscriber")


def fill_sqlite(path: Path, count: int, names: list[str]) -> None:
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO subscriber (email, status, created_at, updated_at, confirmed_at, welcome_step, "
            "digest_frequency, imported, time_zone) VALUES (?, 'confirmed', '2026-11-01 09:00:00.000000', "
            "'2026-11-01 09:00:00.000000', '2026-11-01 09:00:00.000000', 3, 'every', 0, ?)",
            ((f"reader{n}@example.org", None if n % 5 == 0 else names[n % len(names)]) for n in range(1, count + 1)))
        conn.execute("ANALYZE")


def time_digests(env: dict, title: str) -> None:
    from sqlalchemy import select

    from mailer.extensions import db
    from mailer.models import Delivery, Subscriber, aware
    from mailer.posts import digests
    from mailer.posts.local_time import author_zone, next_local

    app = c.make_app(env)
    post_ids = [c.add_post(app, f"Post {n}", f"https://blog.example.com/{n}/") for n in (1, 2, 3)]
    with app.app_context():
        timings = {}
        # At once again after the local one: the ledger grows with each digest, so order alone costs something.
        for label, post_id, at in (("at once", post_ids[0], None), ("09:00 local", post_ids[1], "09:00"),
                                   ("at once, 3rd", post_ids[2], None)):
            started = time.monotonic()
            digest = digests.create_digest(db.session, post_ids=[post_id], local_time=at)
            db.session.commit()
            timings[label] = (time.monotonic() - started, digest.recipients, digest.id, digest.created_at)
        _, recipients, digest_id, created = timings["09:00 local"]
        wrong = 0
        sample = db.session.execute(select(Subscriber.time_zone, Delivery.next_attempt_at)
                                    .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                                    .where(Delivery.digest_id == digest_id).limit(20_000))
        for zone, due in sample:
            expected = next_local("09:00", ZoneInfo(zone) if zone else author_zone(), aware(created))
            wrong += abs((aware(due) - expected).total_seconds()) > 1
    print(f"\n{title}: {recipients:,} recipients")
    for label, (seconds, count, _, _) in timings.items():
        print(f"  {label:<12} {seconds:7.2f} s  ({count / seconds:,.0f} rows/s)")
    before_after = (timings["at once"][0] + timings["at once, 3rd"][0]) / 2
    print(f"  ratio        {timings['09:00 local'][0] / before_after:7.2f} (to the mean of the two at once)")
    print(f"  due times checked against zoneinfo: 20,000 rows, {wrong} wrong")


def run(args, cleanup: c.Cleanup) -> int:
    names = zones(args.zones)
    print(c.machine_line())
    if not args.sqlite_only:
        url = c.fresh_database(args.db, cleanup, args.keep)
        env = c.stack_env(url, 25, Path(tempfile.mkdtemp(prefix="bench-local-time-")))
        c.migrate(env)
        fill_postgresql(c.libpq_url(args.db), args.subscribers, names)
        time_digests(env, f"PostgreSQL, {len(names)} zones")
    if not args.pg_only:
        instance = Path(tempfile.mkdtemp(prefix="bench-local-time-sqlite-"))
        env = c.stack_env(f"sqlite:///{instance / 'mailer.db'}", 25, instance)
        c.migrate(env)
        fill_sqlite(instance / "mailer.db", args.subscribers, names)
        time_digests(env, f"SQLite, {len(names)} zones")
    return 0


if __name__ == "__main__":
    sys.exit(c.run_cleanly(run, parse_args()))
