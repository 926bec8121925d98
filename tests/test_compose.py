"""The deployment files: the compose file validates and runs every process with a health check; the image runs the app."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
TRIAL_OVERRIDE = ROOT / "docker-compose.override.example.yml"
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = ("web", "worker", "beat", "postgres", "redis", "mailpit")
APP_SERVICES = ("web", "worker", "beat")


def compose_command() -> list[str]:
    """`docker-compose` (v1, as Debian ships it) or the `docker compose` plugin; skip or, in CI, fail without."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60)
        if probe.returncode == 0:
            return ["docker", "compose"]
    message = "neither docker-compose nor `docker compose` is installed (Debian: apt-get install docker-compose)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def test_compose_file_validates() -> None:
    command = compose_command()
    result = subprocess.run([*command, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)} config -q failed:\n{result.stdout}\n{result.stderr}"


def test_the_local_trial_override_validates_merged_and_starts_the_app(tmp_path) -> None:
    """Merged over the production file, the override gives every app service an http://127.0.0.1 BASE_URL that
    the app accepts in production."""
    from mailer import config

    command = compose_command()
    merged = subprocess.run([*command, "-f", str(COMPOSE_FILE), "-f", str(TRIAL_OVERRIDE), "config"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert merged.returncode == 0, f"{' '.join(command)} config failed:\n{merged.stdout}\n{merged.stderr}"
    services = yaml.safe_load(merged.stdout)["services"]
    for name in ("migrate", *APP_SERVICES):
        env = services[name]["environment"]
        assert env["BASE_URL"] == "http://127.0.0.1:8000" and env["MAILER_ENV"] == "production", name
        assert env["DATABASE_URL"].startswith("postgresql://"), f"{name}: the override must keep the rest"
        settings = config.load({k: str(v) for k, v in env.items()}, tmp_path)
        assert settings["BASE_URL"] == "http://127.0.0.1:8000"
    with pytest.raises(config.ConfigError, match="https in production"):
        config.load({**{k: str(v) for k, v in services["web"]["environment"].items()},
                     "BASE_URL": "http://newsletter.example.com"}, tmp_path)


def test_every_service_exists_with_a_health_check(compose: dict) -> None:
    services = compose["services"]
    for name in SERVICES:
        assert name in services, f"service {name!r} is missing"
        check = services[name].get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"service {name!r} has no health check"


def test_dependencies_wait_for_health_and_migration(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency!r}"
            wanted = "service_completed_successfully" if "healthcheck" not in services[dependency] else "service_healthy"
            assert rule.get("condition") == wanted, f"{name} -> {dependency}: condition should be {wanted}"
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert "redis" in depends, f"{name} must wait for the broker"
        migrated = "migrate" in depends or "db upgrade" in " ".join(_command(services[name]))
        assert migrated, f"{name} must start after `mailer db upgrade`"


def test_app_processes_and_production_settings(compose: dict) -> None:
    services = compose["services"]
    assert "mailer:create_app()" in _command(services["web"])
    assert _command(services["worker"])[:4] == ["celery", "-A", "worker", "worker"]
    assert _command(services["beat"])[:4] == ["celery", "-A", "worker", "beat"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["MAILER_ENV"] == "production"
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:" in env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:")
        assert "https://" in env["BASE_URL"], "production refuses a BASE_URL that is not https"
        for required in ("MAIL_FROM", "SECRET_KEY", "ERASURE_KEY", "SMTP_URL", "REDIS_URL", "EMBED_ORIGINS"):
            assert env.get(required), f"{name}: {required} is not set"


def _command(service: dict) -> list[str]:
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else list(command)


def test_dockerfile_serves_the_app_factory() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()]
    assert any(line.startswith("FROM python:3.11-slim") for line in lines)
    cmd = [line for line in lines if line.startswith("CMD ")][-1][4:]
    argv = json.loads(cmd) if cmd.startswith("[") else cmd.split()
    assert argv[0] == "gunicorn"
    assert "mailer:create_app()" in argv
    assert any(line.startswith("USER ") and line.split()[1] not in ("root", "0") for line in lines), "runs as root"
    assert "EXPOSE 8000" in lines


@pytest.mark.parametrize("script", ["scripts/run", "scripts/test", "scripts/mailer", ".ci/run"])
def test_scripts_are_executable_bash(script: str) -> None:
    path = ROOT / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    assert path.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash")
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
