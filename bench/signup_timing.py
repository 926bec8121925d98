"""Whether POST /subscribe's time tells a known address from a new one: both medians over the same run.

    .venv/bin/python bench/signup_timing.py [--samples 500] [--known 50]

A fresh PostgreSQL database, Redis for rate limits and the broker, the app as `bench/profile_signup.py` runs it
(production settings, the per-IP limit raised), each request a WSGI call with a JSON body. `--known` addresses
sign up first; then new and known addresses take turns, so that both see the same machine at the same moment.
A known address has had its confirmation (the throttle then owes it nothing more), as an address list probed
by someone who signs up every address they want to test. Prints the median, p10 and p90 of each.
The database is dropped on exit.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402
from profile_signup import _call  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=500, help="signups of each kind measured")
    p.add_argument("--known", type=int, default=50, help="addresses signed up before the measurement")
    p.add_argument("--db", default="mailer_bench_signup_timing")
    args = p.parse_args(argv)
    return c.run_cleanly(run, args)


def run(args, cleanup: c.Cleanup) -> int:
    app = c.signup_app(args.db, cleanup, "mailer-bench-signup-timing-")
    counter = iter(range(10**9))

    def signup(email: str) -> float:
        body = json.dumps({"email": email, "name": "Visitor"}).encode()
        start = time.perf_counter()
        status = _call(app, "POST", "/subscribe", body)
        took = time.perf_counter() - start
        if not status.startswith("202"):
            raise SystemExit(f"expected 202, got {status}")
        return took

    known = [f"known-{n}@example.org" for n in range(args.known)]
    for email in known:
        signup(email)
    for _ in range(200):  # warm up both paths: connections, prepared statements, caches
        signup(f"warm-{next(counter)}@example.org")
        signup(known[next(counter) % len(known)])
    times: dict[str, list[float]] = {"new": [], "known": []}
    for n in range(args.samples):
        times["new"].append(signup(f"visitor-{next(counter)}@example.org"))
        times["known"].append(signup(known[n % len(known)]))
    print(c.machine_line())
    for kind, values in times.items():
        deciles = statistics.quantiles(values, n=10)
        print(f"{kind:5} address: median {statistics.median(values) * 1e3:6.2f} ms, p10 {deciles[0] * 1e3:6.2f} ms, "
              f"p90 {deciles[-1] * 1e3:6.2f} ms over {len(values)} signups")
    return 0


if __name__ == "__main__":
    sys.exit(main())
