"""Where a signup's time goes: POST /subscribe called in one process through WSGI, no HTTP server, no load tool.

    .venv/bin/python bench/profile_signup.py [--signups 3000] [--top 30] [--out signup.prof]

A fresh PostgreSQL database, Redis for rate limits and the broker, the app as `bench/signup_throughput.py` runs
it (production settings, the per-IP limit raised). Each request is a WSGI call with a new address as JSON,
exactly what wrk sends there. Prints wall and CPU time per request of the bare route, of a signup and of the
floor (bench/loadtest.py: the signup's two round trips and nothing else), with PostgreSQL's CPU per request,
then the top functions of a cProfile run of the signups.
The database is dropped on exit.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--signups", type=int, default=3000)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--out", help="also write the raw cProfile data here (for pstats, snakeviz)")
    p.add_argument("--db", default="mailer_bench_profile_signup")
    args = p.parse_args(argv)
    return c.run_cleanly(run, args)


def run(args, cleanup: c.Cleanup) -> int:
    from bench.loadtest import BARE, FLOOR

    app = c.signup_app(args.db, cleanup, "mailer-bench-profile-signup-")
    counter = iter(range(10**9))

    def bare():
        return _call(app, "GET", BARE, b"")

    def signup():
        body = json.dumps({"email": f"visitor-{next(counter)}@example.org", "name": "Visitor"}).encode()
        return _call(app, "POST", "/subscribe", body)

    def floor():
        body = json.dumps({"email": f"floor-{next(counter)}@example.org", "name": "Visitor"}).encode()
        return _call(app, "POST", FLOOR, body)

    for call, status in ((bare, "200"), (signup, "202"), (floor, "202")):  # warm up: connections, prepared statements
        for _ in range(200):
            got = call()
            if not got.startswith(status):
                raise SystemExit(f"expected {status}, got {got}")
    pg = c.postgres_pids(args.db)
    print(c.machine_line())
    for name, call in (("bare route", bare), ("signup", signup), ("floor", floor)):
        pg_before = sum(map(c.cpu_seconds, pg))
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.signups):
            call()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        pg_cpu = sum(map(c.cpu_seconds, pg)) - pg_before
        print(f"{name:10}: {wall / args.signups * 1e6:7.0f} µs wall, {cpu / args.signups * 1e6:7.0f} µs CPU, "
              f"PostgreSQL {pg_cpu / args.signups * 1e6:5.0f} µs CPU per request")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.signups):
        signup()
    profile.disable()
    if args.out:
        profile.dump_stats(args.out)
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(key).print_stats(args.top)
        print(out.getvalue())
    return 0


def _call(app, method: str, path: str, body: bytes) -> str:
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)), "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
    }
    answer = []
    chunks = app(environ, lambda status, headers, exc_info=None: answer.append(status))
    try:
        b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return answer[0]


if __name__ == "__main__":
    sys.exit(main())
