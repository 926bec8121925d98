"""The click redirect under load: GET /c/<token> under gunicorn on PostgreSQL, against a bare route of the same gunicorn.

    .venv/bin/python bench/click_redirect.py [--connections 64] [--seconds 20] [--workers 4] [--readers 2000]

wrk (Debian package wrk) drives both from a second process on loopback; the clicks rotate through one signed link
per reader and post of a real digest, so each request verifies a token, reads the post's URL and inserts a click.
Prints requests/s, p50/p99 latency and their ratio (target: clicks/s >= 0.5 x bare, p99 <= 20 ms), and checks that
every answered request was recorded as a click.
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


def prepare(env: dict, readers: int, work: Path) -> Path:
    """A digest of POSTS posts owed to `readers` subscribers; a wrk script rotating through their click links."""
    import psycopg

    from mailer import create_app, links

    c.insert_subscribers(c.libpq_url(DB), readers)
    with psycopg.connect(c.libpq_url(DB)) as conn:
        post_ids = [conn.execute(
            "INSERT INTO post (guid, url, title, summary_html, summary_text, published_at, source, announce, created_at,"
            " updated_at) VALUES (%s, %s, %s, '', '', now(), 'manual', true, now(), now()) RETURNING id",
            (f"bench-{n}", f"{c.POST_URL}?n={n}", f"{c.POST_TITLE} ({n})")).fetchone()[0] for n in range(POSTS)]
        digest_id = conn.execute("INSERT INTO digest (subject, intro, status, audience, recipients, created_at) "
                                 "VALUES ('bench', '', 'sending', 'every', %s, now()) RETURNING id", (readers,)).fetchone()[0]
        conn.execute("INSERT INTO digest_post (digest_id, post_id, position) SELECT %s, id, id FROM post", (digest_id,))
        deliveries = conn.execute(
            "INSERT INTO delivery (kind, subscriber_id, digest_id, dedupe_key, payload, status, attempts, next_attempt_at,"
            " created_at) SELECT 'digest', id, %s, 'digest:' || %s || ':' || id, '{}', 'sent', 1, now(), now()"
            " FROM subscriber RETURNING id, subscriber_id", (digest_id, digest_id)).fetchall()
    app = create_app({"SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"], "SECRET_KEY": env["SECRET_KEY"],
                      "BASE_URL": env["BASE_URL"], "CELERY_BROKER_URL": "memory://"})
    with app.app_context():
        paths = [links.click_url(d, s, digest_id, p).removeprefix(env["BASE_URL"])
                 for d, s in deliveries for p in post_ids]
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
    args = parser.parse_args()
    cleanup = c.Cleanup()
    try:
        work = c.workdir("click-bench", cleanup)
        database = c.fresh_database(DB, cleanup)
        env = c.stack_env(database, c.free_port(), work, MAILER_ENV="production")
        c.migrate(env)
        script = prepare(env, args.readers, work)
        port = c.free_port()
        c.spawn([str(c.BIN / "gunicorn"), "--workers", str(args.workers), "--bind", f"127.0.0.1:{port}",
                 "--log-level", "warning", "bench.loadtest:app"], cleanup, env=env, log_path=work / "gunicorn.log")
        wait_for_gunicorn(port)
        base = f"http://127.0.0.1:{port}"
        wrk(f"{base}/bench/bare", args.connections, 3)  # warm up both
        wrk(f"{base}/", args.connections, 2, script)
        before = _clicks()
        bare = wrk(f"{base}/bench/bare", args.connections, args.seconds)
        click = wrk(f"{base}/", args.connections, args.seconds, script)
        answered = click["requests"]
        recorded = _clicks() - before
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


def _clicks() -> int:
    import psycopg

    with psycopg.connect(c.libpq_url(DB)) as conn:
        return conn.execute("SELECT count(*) FROM click").fetchone()[0]


if __name__ == "__main__":
    main()
