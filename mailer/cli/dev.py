"""`mailer dev`: web, worker and beat as three processes on the embedded default, stopped together by Ctrl-C."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click
from flask import current_app
from flask.cli import with_appcontext


@click.command("dev")
@click.option("--port", default=5000, show_default=True, help="Port for the web app.")
@click.option("--host", default="127.0.0.1", show_default=True)
@with_appcontext
def dev(port: int, host: str) -> None:
    """Run the web app, a Celery worker and beat together for local use."""
    from flask_migrate import upgrade

    upgrade()
    config = current_app.config
    env = {**os.environ, "MAILER_INSTANCE": config["INSTANCE_PATH"]}
    env.setdefault("BASE_URL", f"http://{host}:{port}")
    celery = [sys.executable, "-m", "celery", "-A", "worker"]
    commands = {
        "web": [sys.executable, "-m", "flask", "--app", "mailer:create_app", "run", "--host", host, "--port", str(port), "--no-reload"],
        "worker": [*celery, "worker", "--pool", "solo", "--loglevel", "INFO"],
        "beat": [*celery, "beat", "--loglevel", "INFO", "--schedule", f"{config['INSTANCE_PATH']}/celerybeat-schedule"],
    }
    # A SIGTERM (from `timeout`, a service manager or a closed terminal) stops the children like Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    processes = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
    base = env["BASE_URL"]
    click.secho(f"\nmailer is running on {config['SQLALCHEMY_DATABASE_URI']}", bold=True)
    click.echo(f"  signup form:   {base}/embed")
    mail_view = f"{base}/dev/outbox/" if not config["SMTP_URL"] else "sent through SMTP_URL"
    click.echo(f"  mail sent:     {mail_view}")
    click.echo(f"  health:        {base}/healthz")
    click.echo("Press Ctrl-C to stop web, worker and beat.\n")
    try:
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        dead = [name for name, p in processes.items() if p.poll() is not None]
        click.secho(f"{', '.join(dead)} stopped; stopping the rest (see the messages above).", fg="red", err=True)
    except KeyboardInterrupt:
        click.echo("\nstopping…")
    finally:
        _stop(processes.values())


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
