"""Segments at a million: counting one, and owing a digest to one, each beside its baseline in the same run.

    BENCH_BROKER_URL=redis://127.0.0.1:6379/1 .venv/bin/python bench/segments.py [--subscribers 1000000]

1. A fresh PostgreSQL database (`mailer db upgrade`), N confirmed subscribers (bench/_common.insert_subscribers),
   a second lead magnet ("course"), one confirmed consent each (even ids the handbook, odd ids the course; forms
   iframe, snippet, script, api in turn), a person's click in the last week for one reader in ten and a link
   scanner's for another one in ten, then VACUUM ANALYZE. Nothing is sent (no worker).
2. Counts, each the median of --repeat runs through the app's session after one warm-up: all confirmed readers
   (the baseline), then segment_count() of a few segments. Target: <= 200 ms.
3. Ledgers, each create_digest + commit (with the ANALYZE it runs), a CHECKPOINT before each:
   a digest to everyone (the baseline; an empty ledger), a digest of a new post to the course segment (N/2 rows),
   then a digest to everyone of that post and one more: each course reader is owed only the new one (the
   per-reader post sets: one join against the segment's digest), then a digest to everyone sharing nothing with
   the ledger as large (its baseline), and one more to the segment. Target for the segment: <= 15 s. Last, how
   long choosing the posts takes for everyone and for the segment, every reader of which has had its last post
   (the worst case of the check: no reader lacks it, so every one is looked at).
The database is dropped on exit unless --keep.
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

COUNT_TARGET_MS, LEDGER_TARGET_S = 200, 15
SEGMENTS = {
    "took the course (half)": {"magnets": ["course"]},
    "signed up by an embedded form (three quarters)": {"forms": ["embed"]},
    "engaged in the last 30 days (a tenth)": {"engaged_within_days": 30},
    "took the course, embedded form, not engaged": {"magnets": ["course"], "forms": ["embed"], "engaged": False},
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--db", default="mailer_bench_segment_runs")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--counts-only", action="store_true", help="stop after the counts")
    return p.parse_args(argv)


def seed(libpq: str) -> None:
    """Consents and clicks for every subscriber, in set-based statements."""
    import psycopg

    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("INSERT INTO lead_magnet (slug, title, description, file, filename, content_type, created_at) "
                     "VALUES ('course', 'A five-part course', '', 'x.pdf', 'x.pdf', 'application/pdf', now())")
        conn.execute("""
            INSERT INTO consent (subscriber_id, magnet_id, source_url, form, consent_text, requested_at, confirmed_at)
            SELECT s.id, m.id, 'https://blog.example.com/post-' || (s.id % 50),
                   (ARRAY['iframe', 'snippet', 'script', 'api'])[s.id % 4 + 1], 'Yes', s.created_at, s.confirmed_at
            FROM subscriber s JOIN lead_magnet m ON m.slug = CASE WHEN s.id % 2 = 0 THEN 'handbook' ELSE 'course' END
        """)
        conn.execute("""
            INSERT INTO click (delivery_id, subscriber_id, digest_id, post_id, at, human)
            SELECT 0, s.id, 0, p.id, now() - interval '3 days', s.id % 20 < 2
            FROM subscriber s, (SELECT min(id) AS id FROM post) p WHERE s.id % 10 = 0 OR s.id % 10 = 1
        """)
        conn.execute("VACUUM (ANALYZE)")


def median_ms(session, statement, repeat: int) -> tuple[float, int]:
    session.execute(statement).scalar()
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = session.execute(statement).scalar()
        times.append((time.perf_counter() - started) * 1000)
        session.rollback()
    return statistics.median(times), value


def counts(app, repeat: int) -> None:
    from sqlalchemy import func, select

    from mailer.extensions import db
    from mailer.models import Subscriber
    from mailer.posts import audiences

    with app.app_context():
        baseline, total = median_ms(db.session, select(func.count()).select_from(Subscriber).where(
            Subscriber.status == "confirmed"), repeat)
        print(f"  {'count of all confirmed readers (baseline)':<52}{baseline:8.1f} ms  {total:>9,}")
        for label, rules in SEGMENTS.items():
            ms, found = median_ms(db.session, select(func.count()).select_from(Subscriber).where(
                Subscriber.status == "confirmed", *audiences.conditions(rules)), repeat)
            verdict = "met" if ms <= COUNT_TARGET_MS else "NOT met"
            print(f"  {label:<52}{ms:8.1f} ms  {found:>9,}  ×{ms / baseline:.2f}  ≤ {COUNT_TARGET_MS} ms: {verdict}")


def ledger(app, libpq: str, label: str, title: str, to=None, post_ids=None) -> float:
    from ledger_scale import checkpoint

    from mailer.extensions import db
    from mailer.posts import digests, segments

    post_id = c.add_post(app, title=title, url=f"https://blog.example.com/{abs(hash(title))}/")
    with app.app_context():
        recipients = segments.recipients_of(db.session, magnet=to) if to else segments.EVERYONE
        checkpoint(libpq)
        started = time.monotonic()
        digest = digests.create_digest(db.session, post_ids=[*(post_ids or []), post_id], to=recipients)
        db.session.commit()
        seconds = time.monotonic() - started
        print(f"  {label:<52}{seconds:8.1f} s   {digest.recipients:>9,} rows")
    return post_id, seconds


def run(args, cleanup) -> int:
    url = c.fresh_database(args.db, cleanup, keep=args.keep)
    libpq = c.libpq_url(args.db)
    instance = Path(c.tempfile.mkdtemp(prefix="bench-segments-"))
    env = c.stack_env(url, 2525, instance)
    c.migrate(env)
    print(f"{args.subscribers:,} subscribers: {c.insert_subscribers(libpq, args.subscribers):.1f} s")
    app = c.make_app(env)
    c.add_post(app, title="The post clicked before", url="https://blog.example.com/before/")
    started = time.monotonic()
    seed(libpq)
    print(f"consents and clicks: {time.monotonic() - started:.1f} s\n\nCounts (median of {args.repeat}):")
    counts(app, args.repeat)
    if args.counts_only:
        return 0
    print("\nLedgers (create_digest + commit):")
    ledger(app, libpq, "a digest to everyone (baseline, empty ledger)", "First post")
    shared, segment_s = ledger(app, libpq, "a digest to the course segment", "Course post", to="course")
    ledger(app, libpq, "to everyone, course readers owed one post of two", "Third post", post_ids=[shared])
    ledger(app, libpq, "to everyone, nothing shared (baseline, same ledger)", "Fourth post")
    ledger(app, libpq, "a second digest to the course segment", "Second course post", to="course")
    with app.app_context():
        from mailer.extensions import db
        from mailer.posts import digests

        for label, rules in (("everyone", None), ("the course segment", {"magnets": ["course"]})):
            started = time.monotonic()
            digests.unsent_posts(db.session, back_catalogue=True, rules=rules)
            print(f"  choosing the posts new to {label:<26}{time.monotonic() - started:8.2f} s")
    print(f"\nsegment ledger ≤ {LEDGER_TARGET_S} s: {'met' if segment_s <= LEDGER_TARGET_S else 'NOT met'}")
    return 0


print = functools.partial(print, flush=True)  # noqa: A001  (the figures as they come, also into a file)

if __name__ == "__main__":
    sys.exit(c.run_cleanly(run, parse_args()))
