"""Console pages at a million subscribers: p95 of each page against a plain indexed SELECT of the same rows.

    .venv/bin/python bench/admin_pages.py [--subscribers 1000000] [--requests 50] [--keep]

1. A fresh PostgreSQL database (`mailer db upgrade`); N subscribers in one INSERT … SELECT over generate_series:
   names from 40 first and 40 last names, addresses first.last.N@example.org, statuses 85 % confirmed, 7 % pending,
   6 % unsubscribed, 1.5 % bounced, 0.5 % complained, signups spread over three years; one digest sent to every
   confirmed subscriber (its delivery rows, all sent); VACUUM ANALYZE.
2. A logged-in Flask test client (the whole request: routing, login, queries, Jinja, response) requests each page
   `--requests` times after 5 warm-up requests; the baseline runs the page's main SELECT through the same driver
   (psycopg 3) on one connection, as many times.
3. Prints a table of p50 / p95 per page and baseline; the target is p95 <= 100 ms (the dashboard's 50 ms and the
   stats API's 100 ms). The dashboard and `GET /api/v1/stats` are also measured with a signup stored (one INSERT
   on another connection, outside the timing) before each request, which each must show: code that keeps the
   dashboard's counts for a minute per process has that cache emptied then (what an exact count costs it).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

TARGET_MS = 100
DASHBOARD_TARGET_MS = 50
DASHBOARD_SQL = ("SELECT status, count(*) FROM subscriber GROUP BY status; "
                 "SELECT CAST(timezone('UTC', created_at) AS date) AS d, count(*), count(confirmed_at) FROM subscriber "
                 "WHERE created_at >= now() - interval '90 days' GROUP BY d")
STATS_SQL = ("SELECT status, count(*) FROM subscriber GROUP BY status; "
             "SELECT status, count(*) FROM delivery GROUP BY status; SELECT kind, count(*) FROM delivery GROUP BY kind")
FIRST = ("margaret james mary robert patricia john jennifer michael linda david elizabeth william barbara richard "
         "susan joseph jessica thomas sarah charles karen christopher lisa daniel nancy matthew betty anthony "
         "sandra mark ashley donald kimberly steven emily paul donna andrew michelle joshua carol").split()
LAST = ("chen smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez "
        "wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark ramirez "
        "lewis robinson walker young allen king wright scott torres nguyen hill").split()


def populate(libpq: str, count: int) -> float:
    import psycopg

    started = time.monotonic()
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO subscriber (email, name, status, created_at, updated_at, confirmed_at, welcome_step)
            SELECT f.n || '.' || l.n || '.' || g || '@example.org', initcap(f.n) || ' ' || initcap(l.n), s.status,
                   t.created, t.created, CASE WHEN s.status = 'pending' THEN NULL ELSE t.created + interval '1 hour' END, 3
            FROM generate_series(1, %(count)s) AS g
            CROSS JOIN LATERAL (SELECT (%(first)s::text[])[1 + g %% 40] AS n) f
            CROSS JOIN LATERAL (SELECT (%(last)s::text[])[1 + (g / 40) %% 40] AS n) l
            CROSS JOIN LATERAL (SELECT CASE WHEN g %% 200 < 170 THEN 'confirmed' WHEN g %% 200 < 184 THEN 'pending'
                                            WHEN g %% 200 < 196 THEN 'unsubscribed' WHEN g %% 200 < 199 THEN 'bounced'
                                            ELSE 'complained' END AS status) s
            CROSS JOIN LATERAL (SELECT now() - (interval '3 years' * (%(count)s - g) / %(count)s) AS created) t
            """, {"count": count, "first": FIRST, "last": LAST})
        conn.execute("INSERT INTO digest (subject, intro, status, recipients, created_at) "
                     "SELECT 'Two new answers this week', '', 'sending', count(*), now() FROM subscriber "
                     "WHERE status = 'confirmed'")
        conn.execute("""INSERT INTO delivery (kind, subscriber_id, digest_id, dedupe_key, payload, status, attempts,
                                              next_attempt_at, created_at, sent_at)
                        SELECT 'digest', id, 1, 'digest:1:' || id, '{}', 'sent', 1, now(), now(), now()
                        FROM subscriber WHERE status = 'confirmed'""")
        conn.execute("VACUUM ANALYZE")
    return time.monotonic() - started


def timed(call, repeat: int, before=None) -> list[float]:
    for _ in range(5):
        call()
    samples = []
    for _ in range(repeat):
        if before:
            before()
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=50)
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = p.parse_args(argv)
    return c.run_cleanly(run, args)


def run(args, cleanup) -> int:
    import psycopg

    url = c.fresh_database("mailer_bench_admin", cleanup, keep=args.keep)
    instance = Path(tempfile.mkdtemp(prefix="bench-admin-"))
    env = c.stack_env(url, 2525, instance)
    c.migrate(env)
    libpq = c.libpq_url("mailer_bench_admin")
    print(f"inserted {args.subscribers:,} subscribers and one sent digest in {populate(libpq, args.subscribers):.1f} s")

    import os

    os.environ.update(env)
    from mailer import create_app
    from mailer.admin import stats
    from mailer.admin.auth import set_admin
    from mailer.api_tokens import create_token
    from mailer.extensions import db

    app = create_app({"WTF_CSRF_ENABLED": False})
    with app.app_context():
        set_admin(db.session, "bench@example.org", "bench password 123")
        token = {"Authorization": f"Bearer {create_token(db.session, 'bench')}"}
        fold_tallies(db.session)  # what beat does every few seconds, where the code keeps tallies
        db.session.commit()
    client = app.test_client()
    client.post("/admin/login", data={"email": "bench@example.org", "password": "bench password 123"})
    deep = args.subscribers // 1000  # 999/1000 of the list is newer than this page
    exact = f"{FIRST[7 % 40]}.{LAST[(7 // 40) % 40]}.7@example.org"
    started = time.perf_counter()
    assert client.get("/admin/").status_code == 200
    first_dashboard = (time.perf_counter() - started) * 1000

    pages = [
        ("subscriber list, first page", "/admin/subscribers",
         "SELECT * FROM subscriber ORDER BY id DESC LIMIT 51", ()),
        (f"subscriber list, deep page (id < {deep:,})", f"/admin/subscribers?before={deep}",
         "SELECT * FROM subscriber WHERE id < %s ORDER BY id DESC LIMIT 51", (deep,)),
        ("exact email search", f"/admin/subscribers?q={exact}",
         "SELECT * FROM subscriber WHERE email = %s", (exact,)),
        ("name prefix search ('margaret c')", "/admin/subscribers?q=margaret%20c",
         "SELECT * FROM subscriber WHERE lower(name) LIKE 'margaret c%%' ORDER BY id DESC LIMIT 51", ()),
        ("status filter (bounced)", "/admin/subscribers?status=bounced",
         "SELECT * FROM subscriber WHERE status = 'bounced' ORDER BY id DESC LIMIT 51", ()),
        ("dashboard (as served)", "/admin/", DASHBOARD_SQL, ()),
        ("dashboard, a signup before each visit", "/admin/?signup", DASHBOARD_SQL, ()),
        ("stats API", "/api/v1/stats", STATS_SQL, ()),
        ("stats API, a signup before each request", "/api/v1/stats?signup", STATS_SQL, ()),
    ]
    rows = []
    signups = iter(range(10**9))
    with psycopg.connect(libpq, autocommit=True) as conn, psycopg.connect(libpq, autocommit=True) as writer:
        def sign_up():
            writer.execute("INSERT INTO subscriber (email, status, created_at, updated_at, welcome_step)"
                           " VALUES (%s, 'pending', now(), now(), 0)", (f"bench.signup.{next(signups)}@example.org",))
            if hasattr(stats, "_cache"):
                stats._cache.clear()  # code that keeps the counts a minute: what showing this signup costs it

        for name, path, sql, params in pages:
            def fetch():
                response = client.get(path, headers=token if path.startswith("/api/") else None)
                assert response.status_code == 200, (path, response.status_code)

            def baseline():
                for statement in sql.split("; "):
                    conn.execute(statement, params if "%s" in statement else None).fetchall()

            page = timed(fetch, args.requests, before=sign_up if path.endswith("?signup") else None)
            base = timed(baseline, args.requests)
            rows.append((name, statistics.median(page), p95(page), statistics.median(base), p95(base)))
    print(f"\n{args.requests} requests each after 5 warm-up; milliseconds; first dashboard after the digest "
          f"finished (counts its {args.subscribers * 85 // 100:,} deliveries once, then keeps them): {first_dashboard:.0f} ms\n")
    print("| page | p50 | p95 | plain SELECT p50 | plain SELECT p95 | target p95 | met |")
    print("|---|---:|---:|---:|---:|---:|---|")
    met = True
    for name, p50, p95_, b50, b95 in rows:
        target = DASHBOARD_TARGET_MS if name.startswith("dashboard") else TARGET_MS
        met = met and p95_ <= target
        print(f"| {name} | {p50:.1f} | {p95_:.1f} | {b50:.1f} | {b95:.1f} | {target} | {'yes' if p95_ <= target else 'NO'} |")
    with app.app_context():
        db.engine.dispose()
    return 0 if met else 1


def fold_tallies(session) -> None:
    try:
        from mailer.people import tallies
    except ImportError:  # code from before the tallies
        return
    tallies.fold(session)


if __name__ == "__main__":
    sys.exit(main())
