"""`mailer --help` and `mailer db --help` lead with what a person running the app needs."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def help_text(*args: str, tmp_path) -> str:
    env = {**os.environ, "MAILER_INSTANCE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "mailer", *args, "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_our_commands_come_before_flasks(tmp_path):
    text = help_text(tmp_path=tmp_path)
    ours, flasks = text.split("Flask's commands:")
    for name in ("dev", "digest", "embed", "admin", "subscribers", "db"):
        assert f"\n  {name} " in ours, name
    for name in ("run", "shell", "routes"):
        assert f"\n  {name} " in flasks and f"\n  {name} " not in ours, name
    assert ours.index("\n  dev ") < ours.index("\n  db ")


def test_db_help_leads_with_upgrade_and_current_and_keeps_the_developer_commands(tmp_path):
    text = help_text("db", tmp_path=tmp_path)
    users, developers = text.split("Developer commands")
    assert "\n  upgrade " in users and "\n  current " in users and "\n  downgrade " not in users
    assert "\n  downgrade " in developers and "\n  check " in developers and "\n  migrate " in developers
    assert "downgrade" in help_text("db", "downgrade", tmp_path=tmp_path)  # still there to run
