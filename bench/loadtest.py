"""Load from a second process on loopback with wrk, against the app served by gunicorn with one bare route added.

`bench.loadtest:app` is that app: the production app plus `GET /bench/bare`, the baseline each HTTP benchmark
measures against in the same run, through the same gunicorn, and `POST /bench/floor`, the least any signup has to
do (see floor()).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

BARE = "/bench/bare"
FLOOR = "/bench/floor"


def _app():
    from mailer import create_app
    from mailer.extensions import csrf

    app = create_app()
    app.add_url_rule(BARE, "bench_bare", lambda: "ok")
    app.add_url_rule(FLOOR, "bench_floor", csrf.exempt(floor), methods=["POST"])
    return app


def floor():
    """The round trips no signup can do without, and nothing else: the address read from the JSON body, the
    visitor's IP counted in Redis (what any fixed-window limit does: INCR and EXPIRE, one round trip) and the new
    address stored by new_signup.store in autocommit on a pooled connection, as a signup stores it (one round trip),
    then a JSON 202.

    No validation, bot checks, cap, log line or wake-up: what POST /subscribe costs beyond this is ours to cut,
    what this costs beyond the bare route is not.
    """
    from flask import current_app, request

    from mailer.extensions import db
    from mailer.models import utcnow
    from mailer.people import new_signup
    from mailer.people.mailboxes import mailbox_of
    from mailer.people.subscriptions import CONSENT_TEXT

    email = json.loads(request.get_data())["email"]
    key = f"bench-floor/{request.remote_addr}"
    redis = current_app.extensions.get("bench_redis") or _redis(current_app)
    redis.pipeline(transaction=False).incr(key).expire(key, 60).execute()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:  # as sign_up does
        new_signup.store(connection, magnet="handbook", email=email, mailbox=mailbox_of(email), name="Visitor",
                         source_url=None, form="api",
                         ip=request.remote_addr, user_agent=None, consent_text=CONSENT_TEXT, now=utcnow(),
                         mail_confirmation=True)
    return {"status": "ok"}, 202


def _redis(app):
    import redis

    app.extensions["bench_redis"] = redis.Redis.from_url(app.config["REDIS_URL"])
    return app.extensions["bench_redis"]


def __getattr__(name: str):
    # Built on first use (by gunicorn), not when a benchmark imports wrk() from this module.
    if name == "app":
        return _app()
    raise AttributeError(name)


def wrk(url: str, connections: int, seconds: int, script: Path | None = None, *script_args: str) -> dict:
    """Requests/s, p50 and p99 in ms, request and non-2xx counts, and the raw output (with a Lua script's lines)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed; on Debian or Ubuntu: sudo apt-get install wrk")
    args = [shutil.which("wrk"), "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
            "--timeout", "10s", *(["-s", str(script)] if script else []), url,
            *(["--", *script_args] if script_args else [])]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    percent = {p: _ms(v, unit) for p, v, unit in re.findall(r"^\s+(50|99)\.?0*%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    if len(percent) < 2:
        raise SystemExit(f"wrk gave no latency distribution (did every request fail?):\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    accepted = re.search(r"^ACCEPTED (\d+)$", out, re.M)  # printed by a Lua script that counts its 202s
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": percent["50"],
            "accepted": int(accepted.group(1)) if accepted else None,
            "p99": percent["99"], "requests": int(re.search(r"(\d+) requests in", out).group(1)),
            "non2xx": int(errors.group(1)) if errors else 0, "raw": out}


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wait_for_gunicorn(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{BARE}", timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not start; see its log in the work folder")
