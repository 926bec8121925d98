"""`mailer dev`: web, worker and beat as three processes on the embedded default, stopped together by Ctrl-C."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from ..models import AdminUser

ADDRESS_FILE = "dev-address"  # in the instance folder while `mailer dev` runs: where `mailer embed` points


@click.command("dev")
@click.option("--port", default=5000, show_default=True, help="Port for the web app.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Worker and beat log level; INFO shows every task, beat's sweep every few seconds too.")
@with_appcontext
def dev(port: int, host: str, log_level: str) -> None:
    """Run the web app, a Celery worker and beat together for local use."""
    from flask_migrate import upgrade

    upgrade()
    config = current_app.config
    env = {**os.environ, "MAILER_INSTANCE": config["INSTANCE_PATH"]}
    env.setdefault("BASE_URL", f"http://{host}:{port}")
    celery = [sys.executable, "-m", "celery", "-A", "worker"]
    commands = {
        "web": [sys.executable, "-m", "flask", "--app", "mailer:create_app", "run", "--host", host, "--port", str(port), "--no-reload"],
        # The solo pool runs one task at a time: --concurrency 1 makes its banner say so (not the CPU count).
        "worker": [*celery, "worker", "--pool", "solo", "--concurrency", "1", "--loglevel", log_level],
        "beat": [*celery, "beat", "--loglevel", log_level, "--schedule", f"{config['INSTANCE_PATH']}/celerybeat-schedule"],
    }
    # A SIGTERM (from `timeout`, a service manager or a closed terminal) stops the children like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    processes = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
    address = Path(config["INSTANCE_PATH"]) / ADDRESS_FILE
    address.write_text(f"{env['BASE_URL']}\n{os.getpid()}\n", encoding="utf-8")
    _banner(env["BASE_URL"], config)
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = [name for name, p in processes.items() if p.poll() is not None]
        click.secho(f"{', '.join(dead)} stopped; stopping the rest (see the messages above).", fg="red", err=True)
    except KeyboardInterrupt:
        click.echo("\nstopping…")
    finally:
        address.unlink(missing_ok=True)
        _stop(processes.values())


def serving_address() -> str | None:
    """The address a running `mailer dev` of this instance folder serves on, if one runs."""
    path = Path(current_app.config["INSTANCE_PATH"]) / ADDRESS_FILE
    try:
        base, pid = path.read_text(encoding="utf-8").split()
        os.kill(int(pid), 0)  # a `mailer dev` killed outright left its file behind
    except (OSError, ValueError):
        return None
    return base


def _banner(base: str, config) -> None:
    from ..extensions import db

    has_admin = db.session.query(AdminUser.id).first() is not None
    db.session.rollback()
    click.secho(f"\nmailer is running on {config['SQLALCHEMY_DATABASE_URI']}", bold=True)
    click.echo(f"  console:       {base}/admin/")
    if not has_admin:
        click.echo("                 first create its admin, in another terminal:")
        click.echo("                 scripts/mailer admin create you@example.com --password-stdin")
    click.echo(f"  signup form:   {base}/embed")
    mail_view = f"{base}/dev/outbox/" if not config["SMTP_URL"] else "sent through SMTP_URL"
    click.echo(f"  mail sent:     {mail_view}")
    click.echo(f"  health:        {base}/healthz")
    click.echo("Worker and beat log warnings only (--log-level INFO shows each task). Press Ctrl-C to stop them all.\n")


def _stop(processes) -> None:
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in processes:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
