"""`mailer db upgrade` on both databases: idempotent, reversible, and matching the models."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, fresh_database


def mailer(*args: str, database_url: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "MAILER_INSTANCE": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "mailer.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_upgrade_is_idempotent_reversible_and_matches_the_models(database, tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}" if database == "sqlite" else fresh_database("mailer_migrations")
    url = url.replace("postgresql+psycopg://", "postgresql://")
    for step in (["db", "upgrade"], ["db", "upgrade"], ["db", "check"], ["db", "downgrade", "base"],
                 ["db", "upgrade"], ["db", "check"]):
        result = mailer(*step, database_url=url, tmp_path=tmp_path)
        assert result.returncode == 0, f"mailer {' '.join(step)}:\n{result.stdout}\n{result.stderr}"
    assert "No new upgrade operations detected" in result.stdout + result.stderr
