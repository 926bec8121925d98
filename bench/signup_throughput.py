"""Signup throughput and latency: POST /subscribe under gunicorn on PostgreSQL, against a bare route of the same gunicorn.

    .venv/bin/python bench/signup_throughput.py [--connections 64] [--seconds 20] [--workers 4]

wrk (Debian package wrk) drives both from a second process on loopback. Prints requests/s, p50/p99 latency,
their ratio (target: signups/s >= 0.5 x bare, p99 <= 50 ms at 64 connections) and checks that the number of
stored subscribers equals the number of 202 answers. A third run drives POST /bench/floor (bench/loadtest.py): a
Redis INCR and the signup's INSERT statement with nothing around them, the most any signup could reach here.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _common as c  # noqa: E402
from bench.loadtest import FLOOR, wait_for_gunicorn, wrk  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (same for both runs)")
    args = parser.parse_args()
    cleanup = c.Cleanup()
    try:
        work = c.workdir("signup-bench", cleanup)
        database = c.fresh_database("mailer_bench_signup", cleanup)
        # The per-client signup limit would turn a one-machine load test into 429s, and one network's share of the
        # confirmation cap would stop its mails: this measures the signup itself.
        env = c.stack_env(database, c.free_port(), work, SIGNUP_RATE_LIMIT="1000000/minute", MAILER_ENV="production",
                          CONFIRMATION_NETWORK_SHARE="1", REDIS_URL=c.BROKER_URL)
        c.flush_redis(c.BROKER_URL)
        c.migrate(env)
        port = c.free_port()
        gunicorn = c.spawn([str(c.BIN / "gunicorn"), "--workers", str(args.workers), "--bind", f"127.0.0.1:{port}",
                            "--log-level", "warning", "bench.loadtest:app"], cleanup, env=env,
                           log_path=work / "gunicorn.log")
        wait_for_gunicorn(port)
        base = f"http://127.0.0.1:{port}"
        # Warm up both (the workers' database connections, prepared statements), with addresses of their own.
        wrk(f"{base}/bench/bare", args.connections, 3)
        wrk(f"{base}/subscribe", args.connections, 3, HERE / "signup.lua", "warm-up")
        wrk(base, args.connections, 3, HERE / "signup.lua", "floor-warm-up", FLOOR)  # opens its own connections
        groups = {"gunicorn workers": c.children(gunicorn.pid), "PostgreSQL": c.postgres_pids("mailer_bench_signup"),
                  "Redis": c.pids_named("redis-server")}
        time.sleep(1)  # the warm-up's last requests, in flight when wrk stopped, are stored by now
        stored_before = _count(c.libpq_url("mailer_bench_signup"))
        bare, bare_cpu = _measured(groups, wrk, f"{base}/bench/bare", args.connections, args.seconds)
        signup, signup_cpu = _measured(groups, wrk, f"{base}/subscribe", args.connections, args.seconds,
                                       HERE / "signup.lua", "visitor")
        stored = _count(c.libpq_url("mailer_bench_signup")) - stored_before
        floor, floor_cpu = _measured(groups, wrk, base, args.connections, args.seconds,
                                     HERE / "signup.lua", "floor", FLOOR)
        print(c.machine_line())
        print(f"gunicorn {args.workers} sync workers, wrk 2 threads, {args.connections} connections, {args.seconds} s each")
        print(f"bare route : {bare['rps']:8.0f} req/s   p50 {bare['p50']:6.1f} ms   p99 {bare['p99']:6.1f} ms")
        print(f"signup     : {signup['rps']:8.0f} req/s   p50 {signup['p50']:6.1f} ms   p99 {signup['p99']:6.1f} ms"
              f"   non-2xx {signup['non2xx']}")
        print(f"floor      : {floor['rps']:8.0f} req/s   p50 {floor['p50']:6.1f} ms   p99 {floor['p99']:6.1f} ms"
              f"   non-2xx {floor['non2xx']}   (one Redis INCR, one INSERT statement, nothing else)")
        print(f"ratio signups/bare: {signup['rps'] / bare['rps']:.2f} (target >= 0.5); p99 target <= 50 ms; "
              f"floor/bare {floor['rps'] / bare['rps']:.2f}, signups/floor {signup['rps'] / floor['rps']:.2f}")
        print("CPU per request, µs, bare / signup / floor:  " + ";  ".join(
            f"{name} {bare_cpu[name]:.0f} / {signup_cpu[name]:.0f} / {floor_cpu[name]:.0f}" for name in bare_cpu))
        # wrk stops with up to one request per connection in flight: stored but never answered.
        unanswered = stored - signup["accepted"]
        verdict = "every 202 stored" if 0 <= unanswered <= args.connections else "MISMATCH"
        print(f"202 answers: {signup['accepted']}; subscribers stored: {stored} "
              f"({unanswered} in flight when wrk stopped); {verdict}")
        gunicorn.poll()
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
    finally:
        cleanup.run()


def _measured(groups: dict, run, *args) -> tuple[dict, dict[str, float]]:
    """run(*args), with the CPU time each group of processes spent per request meanwhile (wrk is in "other")."""
    before = c.CpuSnapshot(groups)
    result = run(*args)
    cpu = c.CpuSnapshot.delta(before, c.CpuSnapshot(groups))
    requests = max(result["requests"], 1)
    return result, {name.split(" (")[0]: seconds / requests * 1e6 for name, seconds in cpu.items()
                    if not name.startswith("_")}


def _count(libpq: str) -> int:
    import psycopg

    with psycopg.connect(libpq) as conn:
        return conn.execute("SELECT count(*) FROM subscriber").fetchone()[0]


if __name__ == "__main__":
    main()
