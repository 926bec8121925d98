"""The click redirect under load: GET /c/<token> under gunicorn on PostgreSQL, against a bare route of the same gunicorn.

    .venv/bin/python bench/click_redirect.py [--connections 64] [--seconds 20] [--workers 4] [--readers 2000]

wrk (Debian package wrk) drives both from a second process on loopback; the clicks rotate through one signed link
per reader and post of a real digest, as compose makes them, so each request verifies a token and queues its click
in Redis (click_buffer); with --unsigned-links, links of the older form (no URL signed in), so each request reads
the post's URL and inserts its click in PostgreSQL. Prints requests/s, p50/p99 latency and their ratio (target:
clicks/s >= 0.5 x bare, p99 <= 20 ms), then stores the waiting clicks and checks that every answered request was
recorded as a click.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _common as c  # noqa: E402
from bench.loadtest import wait_for_gunicorn, wrk  # noqa: E402

DB = "mailer_bench_click"
POSTS = 3


def prepare(env: dict, readers: int, work: Path, signed: bool) -> Path:
    """A digest of POSTS posts owed to `readers` subscribers; a wrk script rotating through their click links."""
    import psycopg

    from mailer import create_app, links, tokens

    c.insert_subscribers(c.libpq_url(DB), readers)
    with psycopg.connect(c.libpq_url(DB)) as conn:
        posts = [conn.execute(
            "INSERT INTO post (guid, url, title, summary_html, summary_text, published_at, source, announce, created_at,"
            " updated_at) VALUES (%s, %s, %s, '', '', now(), 'manual', true, now(), now()) RETURNING id",
            (f"bench-{n}", f"{c.POST_URL}?n={n}", f"{c.POST_TITLE} ({n})")).fetchone()[0] for n in range(POSTS)]
        urls = dict(conn.execute("SELECT id, url FROM post").fetchall())
        digest_id = conn.execute("INSERT INTO digest (subject, intro, status, audience, recipients, created_at) "
                                 "VALUES ('bench', '', 'sending', 'every', %s, now()) RETURNING id", (readers,)).fetchone()[0]
        conn.execute("INSERT INTO digest_post (digest_id, post_id, position) SELECT %s, id, id FROM post", (digest_id,))
        deliveries = conn.execute(
            "INSERT INTO delivery (kind, subscriber_id, digest_id, dedupe_key, payload, status, attempts, next_attempt_at,"
            " created_at) SELECT 'digest', id, %s, 'digest:' || %s || ':' || id, '{}', 'sent', 1, now(), now()"
            " FROM subscriber RETURNING id, subscriber_id", (digest_id, digest_id)).fetchall()
    app = create_app({"SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"], "SECRET_KEY": env["SECRET_KEY"],
                      "ERASURE_KEY": env["ERASURE_KEY"], "BASE_URL": env["BASE_URL"], "CELERY_BROKER_URL": "memory://"})
    with app.app_context():
        def path(delivery: int, subscriber: int, post: int) -> str:
            if signed:
                return links.click_url(delivery, subscriber, digest_id, post, urls[post]).removeprefix(env["BASE_URL"])
            return "/c/" + tokens.make(tokens.CLICK, [delivery, subscriber, digest_id, post])  # the older form

        paths = [path(d, s, p) for d, s in deliveries for p in posts]
    script = work / "click.lua"
    script.write_text("local paths = {\n" + ",\n".join(f'"{p}"' for p in paths) + "\n}\n" + LUA)
    return script


LUA = """
local n = 0
function init(args)
  n = math.random(#paths)
end
request = function()
  n = n % #paths + 1
  return wrk.format("GET", paths[n])
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (same for both runs)")
    parser.add_argument("--readers", type=int, default=2000, help="subscribers, each with a link per post")
    parser.add_argument("--unsigned-links", action="store_true",
                        help="links of the older form, without the post's URL: each click reads the post and inserts")
    args = parser.parse_args()
    cleanup = c.Cleanup()
    try:
        work = c.workdir("click-bench", cleanup)
        database = c.fresh_database(DB, cleanup)
        env = c.stack_env(database, c.free_port(), work, MAILER_ENV="production", REDIS_URL=c.BROKER_URL)
        c.flush_redis(c.BROKER_URL)
        c.migrate(env)
        script = prepare(env, args.readers, work, signed=not args.unsigned_links)
        port = c.free_port()
        c.spawn([str(c.BIN / "gunicorn"), "--workers", str(args.workers), "--bind", f"127.0.0.1:{port}",
                 "--log-level", "warning", "bench.loadtest:app"], cleanup, env=env, log_path=work / "gunicorn.log")
        wait_for_gunicorn(port)
        base = f"http://127.0.0.1:{port}"
        wrk(f"{base}/bench/bare", args.connections, 3)  # warm up both
        wrk(f"{base}/", args.connections, 2, script)
        before = _store_waiting_clicks(env)
        bare = wrk(f"{base}/bench/bare", args.connections, args.seconds)
        click = wrk(f"{base}/", args.connections, args.seconds, script)
        answered = click["requests"]
        recorded = _store_waiting_clicks(env) - before
        print(c.machine_line())
        print(f"gunicorn {args.workers} sync workers, wrk 2 threads, {args.connections} connections, {args.seconds} s each;"
              f" {args.readers} readers x {POSTS} links")
        print(f"bare route     : {bare['rps']:8.0f} req/s   p50 {bare['p50']:6.1f} ms   p99 {bare['p99']:6.1f} ms")
        print(f"click redirect : {click['rps']:8.0f} req/s   p50 {click['p50']:6.1f} ms   p99 {click['p99']:6.1f} ms"
              f"   non-2xx/3xx {click['non2xx']}")
        print(f"ratio clicks/bare: {click['rps'] / bare['rps']:.2f} (target >= 0.5); p99 target <= 20 ms")
        print(f"requests answered: {answered}; clicks recorded: {recorded} "
              f"({'at least one per answer' if recorded >= answered else 'FEWER THAN ANSWERS'})")
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
    finally:
        cleanup.run()


def _store_waiting_clicks(env: dict) -> int:
    """Move the clicks queued in Redis into the table, as beat would; the number of rows then."""
    from mailer import create_app
    from mailer.extensions import db
    from mailer.posts import click_buffer

    app = create_app({"SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"], "SECRET_KEY": env["SECRET_KEY"],
                      "ERASURE_KEY": env["ERASURE_KEY"], "REDIS_URL": env["REDIS_URL"], "CELERY_BROKER_URL": "memory://"})
    with app.app_context():
        click_buffer.drain(db.session, app.config)
        db.session.remove()
    return _clicks()


def _clicks() -> int:
    import psycopg

    with psycopg.connect(c.libpq_url(DB)) as conn:
        return conn.execute("SELECT count(*) FROM click").fetchone()[0]


if __name__ == "__main__":
    main()
