"""`mailer dev` on the embedded default: SQLite, the SQLAlchemy broker, a real worker and beat, mail in the outbox."""
from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from email import policy
from email.parser import BytesParser
from pathlib import Path

from tests.smtp_sink import _free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def outbox_mail(outbox: Path, subject_part: str):
    for path in sorted(outbox.glob("*.eml")) if outbox.exists() else []:
        msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if subject_part in msg["Subject"]:
            return msg
    return None


def test_mailer_dev_runs_the_whole_journey_and_stops_on_ctrl_c(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "SMTP_URL", "REDIS_URL", "BASE_URL", "SECRET_KEY")}
    env.update(MAILER_INSTANCE=str(tmp_path / "instance"), SWEEP_SECONDS="1")
    log = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen([sys.executable, "-m", "mailer", "dev", "--port", str(port)], cwd=tmp_path, env=env,
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(path: str) -> bytes:
        return opener.open(base + path, timeout=10).read()

    def post(path: str, fields: dict) -> bytes:
        return opener.open(base + path, data=urllib.parse.urlencode(fields).encode(), timeout=10).read()

    try:
        def healthy():
            try:
                return b'"database":"ok"' in get("/healthz")
            except OSError:
                return False

        wait_until(healthy, 60, f"{base}/healthz (log: {tmp_path / 'dev.log'})")
        embed = subprocess.run([sys.executable, "-m", "mailer", "embed"], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=60)
        assert f'src="{base}/embed.js"' in embed.stdout, embed.stdout + embed.stderr  # where dev serves, not :5000
        started = time.monotonic()
        post("/subscribe", {"email": "dev-reader@example.com"})
        outbox = tmp_path / "instance" / "outbox"
        confirmation = wait_until(lambda: outbox_mail(outbox, "Confirm your"), 90, "the confirmation in the outbox")
        confirm_path = re.search(r"http://127\.0\.0\.1:\d+(/confirm/\S+)", confirmation.get_body(("plain",)).get_content()).group(1)
        token = re.search(rb'name="csrf_token" value="([^"]+)"', get(confirm_path)).group(1).decode()
        assert b"download" in post(confirm_path, {"csrf_token": token}).lower()
        wait_until(lambda: outbox_mail(outbox, "Welcome"), 90, "the welcome mail in the outbox")
        print(f"\njourney on the embedded default (SQLite, SQLAlchemy broker): signup to welcome mail in {time.monotonic() - started:.2f}s")
        assert b"Welcome to Career Q&amp;A" in get("/dev/outbox/")
    finally:
        os.killpg(dev.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        try:
            dev.wait(timeout=20)
        finally:
            log.close()
    leftover = subprocess.run(["pgrep", "-s", str(dev.pid)], capture_output=True, text=True).stdout.split()
    assert leftover == [], f"processes still running after Ctrl-C: {leftover}"
    printed = (tmp_path / "dev.log").read_text(errors="replace")
    assert f"console:       {base}/admin/" in printed and "scripts/mailer admin create" in printed
    assert re.search(r"concurrency:\s+1 \(solo\)", printed), "the worker's banner must say it runs one task at a time"
    assert "Sending due task" not in printed and "succeeded in" not in printed  # quiet: no line per sweep or task
    assert not (tmp_path / "instance" / "dev-address").exists()
