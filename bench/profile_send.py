"""Where a worker's time goes per digest mail: outbox.deliver_due in one process, no Celery.

    .venv/bin/python bench/profile_send.py [--subscribers 3000] [--top 25] [--out send.prof]

A fresh database with N confirmed subscribers, smtp-sink on a loopback port; for each measurement a new post
and a digest of it are created in-process, then `outbox.deliver_due()` (a batch of SEND_BATCH rows) is called
in a loop (what each Celery task does, one app context per batch) until the ledger is empty.

1. The same send three ways, to split the cost per mail without a profiler's distortion:
     full       the real code: compose, SMTP to smtp-sink, ledger updates
     no SMTP    outbox.open_transport replaced by a transport that accepts without sending
     no compose also outbox.compose replaced by a function returning one message built beforehand
   (full - no SMTP) is SMTP, (no SMTP - no compose) is building the message,
   (no compose) is the ledger: claiming, reading, locking, updating and committing each row.
   Each line gives wall time, this process's CPU and PostgreSQL's CPU per mail.
2. Single steps timed alone (median of many calls): ssl.create_default_context(), the unsubscribe token,
   compose() (the message's wire bytes), one SMTP transaction on an open connection.
3. cProfile of a full send: the top functions by own and cumulative time.
The database is dropped on exit.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import smtplib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from mailer.mail.transport import Transport  # noqa: E402


class NullTransport(Transport):
    """Accepts every message at once: no network."""

    def send(self, *args, **kwargs) -> str:
        return "250 accepted"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subscribers", type=int, default=3000)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", help="also write the raw cProfile data here (for pstats, snakeviz)")
    p.add_argument("--db", default="mailer_bench_profile")
    args = p.parse_args(argv)
    return c.run_cleanly(run, args)


def run(args, cleanup: c.Cleanup) -> int:
    work = c.workdir("mailer-bench-profile-", cleanup)
    sink = c.Sink(cleanup)
    env = c.stack_env(c.fresh_database(args.db, cleanup), sink.port, work / "instance",
                      CELERY_BROKER_URL="memory://")
    c.migrate(env)
    c.insert_subscribers(c.libpq_url(args.db), args.subscribers)
    app = c.make_app(env)
    print(f"profile of one sending process, {args.subscribers} mails per run; {c.machine_line()}")

    from sqlalchemy import select

    from mailer.extensions import db
    from mailer.models import Delivery, Subscriber
    from mailer.outbox import sender as outbox
    from mailer.outbox.compose import compose
    from mailer.posts import digests

    posts = iter(range(1, 1000))

    def new_digest() -> int:
        n = next(posts)
        c.add_post(app, title=f"{c.POST_TITLE} (part {n})", url=f"{c.POST_URL}{n}/")
        with app.app_context():
            digest = digests.create_digest(db.session)
            db.session.commit()
            digest_id = digest.id
            db.session.remove()
        return digest_id

    def drain() -> int:
        sent = 0
        while True:
            with app.app_context():  # one app context per batch, as each Celery task has
                n = outbox.deliver_due()
            if not n:
                return sent
            sent += n

    def measure(label: str, profiler: cProfile.Profile | None = None) -> float:
        new_digest()
        c.wait_quiet()
        pg_before = {pid: c.cpu_seconds(pid) for pid in c.postgres_pids(args.db)}
        before = sink.count
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        sent = drain()
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        pg = sum(max(0.0, c.cpu_seconds(pid) - pg_before.get(pid, 0.0)) for pid in c.postgres_pids(args.db))
        if label.startswith("full"):
            sink.wait_for(before + sent, timeout=5)
        note = f"  sink accepted {sink.count - before}" if label.startswith("full") else ""
        print(f"  {label:<24}{wall / sent * 1000:8.2f} ms wall {cpu / sent * 1000:8.2f} ms CPU "
              f"{pg / sent * 1000:8.2f} ms PostgreSQL CPU   per mail  ({sent / wall:5.0f} mails/s){note}")
        return wall / sent

    new_digest()
    drain()  # warm-up: templates compiled, connections open
    print("\n1. the same send three ways (one process)")
    full = measure("full")
    real_open, real_compose = outbox.open_transport, outbox.compose
    outbox.open_transport = lambda config: NullTransport()
    try:
        no_smtp = measure("no SMTP")
        with app.app_context():
            delivery = db.session.scalars(select(Delivery).order_by(Delivery.id.desc()).limit(1)).one()
            fixed = compose(delivery, db.session.get(Subscriber, delivery.subscriber_id))
            db.session.remove()
        outbox.compose = lambda delivery, subscriber: fixed
        no_compose = measure("no compose, no SMTP")
    finally:
        outbox.open_transport, outbox.compose = real_open, real_compose
    print(f"  => per mail: ledger {no_compose * 1000:.2f} ms, building the message {(no_smtp - no_compose) * 1000:.2f}"
          f" ms, SMTP {(full - no_smtp) * 1000:.2f} ms (wall)")

    print("\n2. single steps, median per call")
    steps(app, sink.port)

    print(f"\n3. cProfile of a full send of {args.subscribers} mails")
    profiler = cProfile.Profile()
    measure("full, under cProfile", profiler)
    if args.out:
        profiler.dump_stats(args.out)
    for key, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(args.top)
        body = out.getvalue()
        print(f"\n--- top {args.top} by {title} (seconds for all {args.subscribers} mails) ---")
        print(body[body.index("   ncalls"):].rstrip())
    return 0


def steps(app, port: int) -> None:
    import ssl

    from sqlalchemy import select

    from mailer import links
    from mailer.extensions import db
    from mailer.models import Delivery, Subscriber
    from mailer.outbox.compose import compose

    def timed(label: str, fn, repeat: int = 300, setup=lambda: None) -> None:
        fn(setup())
        samples = []
        for _ in range(repeat):
            arg = setup()
            t = time.perf_counter()
            fn(arg)
            samples.append(time.perf_counter() - t)
        print(f"  {label:<56}{statistics.median(samples) * 1000:8.3f} ms per call")

    with app.app_context():
        delivery = db.session.scalars(select(Delivery).order_by(Delivery.id.desc()).limit(1)).one()
        subscriber = db.session.get(Subscriber, delivery.subscriber_id)
        data = compose(delivery, subscriber).data
        timed("ssl.create_default_context() (each new connection)", lambda _: ssl.create_default_context(), repeat=30)
        timed("links.unsubscribe_url() (itsdangerous token)", lambda _: links.unsubscribe_url(subscriber.id))
        timed("compose(delivery, subscriber) (the wire bytes)", lambda _: compose(delivery, subscriber))
        smtp = smtplib.SMTP("127.0.0.1", port)
        try:
            timed(f"smtplib sendmail of {len(data)} bytes, open connection",
                  lambda _: smtp.sendmail("newsletter@news.example.com", ["reader@example.org"], data), repeat=1000)
        finally:
            smtp.quit()
        db.session.remove()


if __name__ == "__main__":
    os.chdir(c.ROOT)
    sys.exit(main())
