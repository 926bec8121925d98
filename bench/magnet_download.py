"""A 20 MB lead magnet downloaded from PostgreSQL (upload parts) against the same file sent from the disk.

    BENCH_BROKER_URL=redis://127.0.0.1:6379/N .venv/bin/python bench/magnet_download.py [--mb 20] [--downloads 20]

gunicorn (one sync worker) serves `bench.loadtest:app` on PostgreSQL. One magnet's file is an upload kept in the
database in 1 MB parts (what the console stores); the baseline magnet names the same bytes in a file on the disk
(what the console stored before, still served for files not yet moved in). curl fetches each `--downloads` times
one after the other; the script prints the time per download (p50, max), the throughput, the
CPU seconds the gunicorn worker and the PostgreSQL backends spent per download, and the gunicorn worker's peak
resident memory (VmHWM) after each line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import _common as c  # noqa: E402
from bench.loadtest import wait_for_gunicorn  # noqa: E402

DB = "mailer_bench_download"


def prepare(env: dict, size: int, work: Path) -> tuple[str, str]:
    """Two magnets with the same bytes, one in the database and one on disk; a confirmed reader's path to each."""
    from mailer.extensions import db
    from mailer.links import download_url
    from mailer.models import LeadMagnet, Subscriber, utcnow
    from mailer.uploads import store

    data = os.urandom(size)
    (work / "on-disk.pdf").write_bytes(data)
    app = c.make_app(env)
    with app.app_context():
        reader = Subscriber(email="reader@example.com", status="confirmed", created_at=utcnow(), updated_at=utcnow(),
                            confirmed_at=utcnow())
        in_db = LeadMagnet(slug="in-db", title="In the database", file="", filename="guide.pdf")
        on_disk = LeadMagnet(slug="on-disk", title="On disk", file=str(work / "on-disk.pdf"), filename="guide.pdf")
        db.session.add_all([reader, in_db, on_disk])
        db.session.flush()
        started = time.perf_counter()
        with (work / "on-disk.pdf").open("rb") as f:
            store.save(db.session, f, magnet_id=in_db.id)
        db.session.commit()
        print(f"stored {size / 2**20:.0f} MB in the database in {time.perf_counter() - started:.2f} s")
        paths = [download_url(reader.id, m.id).removeprefix(env["BASE_URL"]) for m in (in_db, on_disk)]
        db.session.remove()
    return paths[0], paths[1]


def fetch(url: str) -> tuple[float, int]:
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download} %{http_code}", url],
                         capture_output=True, text=True, check=True).stdout.split()
    if out[2] != "200":
        raise SystemExit(f"{url}: HTTP {out[2]}")
    return float(out[0]), int(out[1])


def phase(name: str, url: str, downloads: int, gunicorn_pid: int, size: int) -> None:
    worker = c.children(gunicorn_pid)[0]
    cpu_before, pg_before = c.cpu_seconds(worker), sum(map(c.cpu_seconds, c.postgres_pids(DB)))
    started = time.perf_counter()
    results = [fetch(url) for _ in range(downloads)]
    wall = time.perf_counter() - started
    assert all(n == size for _, n in results), "a download came back short"
    times = sorted(t for t, _ in results)
    cpu = (c.cpu_seconds(worker) - cpu_before) / downloads
    pg = (sum(map(c.cpu_seconds, c.postgres_pids(DB))) - pg_before) / downloads
    print(f"{name:<22}: p50 {statistics.median(times) * 1000:7.1f} ms  max {times[-1] * 1000:7.1f} ms  "
          f"{downloads * size / 2**20 / wall:7.1f} MB/s  gunicorn CPU {cpu * 1000:6.1f} ms  "
          f"postgres CPU {pg * 1000:6.1f} ms per download  worker peak RSS {c.memory_kb(worker)[1] / 1024:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--downloads", type=int, default=20)
    args = parser.parse_args()
    size = args.mb * 2**20
    cleanup = c.Cleanup()
    try:
        work = c.workdir("download-bench", cleanup)
        database = c.fresh_database(DB, cleanup)
        env = c.stack_env(database, c.free_port(), work, MAILER_ENV="production",
                          ERASURE_KEY="bench-erasure-key-fedcba9876543210")
        c.migrate(env)
        in_db, on_disk = prepare(env, size, work)
        port = c.free_port()
        gunicorn = c.spawn([str(c.BIN / "gunicorn"), "--workers", "1", "--bind", f"127.0.0.1:{port}",
                            "--log-level", "warning", "bench.loadtest:app"], cleanup, env=env,
                           log_path=work / "gunicorn.log")
        wait_for_gunicorn(port)
        base = f"http://127.0.0.1:{port}"
        print(c.machine_line())
        before = c.memory_kb(c.children(gunicorn.pid)[0])[1]
        print(f"gunicorn worker peak RSS before any download: {before / 1024:.0f} MB")
        print(f"gunicorn 1 sync worker; {args.mb} MB file; {args.downloads} downloads per line; curl on loopback")
        fetch(base + in_db)  # warm up: the worker's first requests import and connect
        fetch(base + on_disk)
        phase("from disk (send_file)", base + on_disk, args.downloads, gunicorn.pid, size)
        phase("from PostgreSQL", base + in_db, args.downloads, gunicorn.pid, size)
    except KeyboardInterrupt:
        print("interrupted; cleaning up", file=sys.stderr)
    finally:
        cleanup.run()


if __name__ == "__main__":
    main()
