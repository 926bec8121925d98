"""Settings: production refuses to start without what it needs; malformed values are named; the CLI says so."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailer.config import ConfigError, load

ROOT = Path(__file__).resolve().parent.parent
MAILER = Path(sys.executable).parent / "mailer"

PRODUCTION = {
    "MAILER_ENV": "production",
    "DATABASE_URL": "postgresql://mailer:pw@db.internal:5432/mailer",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "SECRET_KEY": "s3cret-s3cret-s3cret",
    "ERASURE_KEY": "erasure-erasure-erasure",
    "BASE_URL": "https://news.example.com",
    "MAIL_FROM": "Career Q&A <newsletter@example.com>",
}


def production(**changes) -> dict:
    env = {**PRODUCTION, **changes}
    return {k: v for k, v in env.items() if v is not None}


def load_in(tmp_path: Path, env: dict) -> dict:
    return load(env, instance=tmp_path)


# --- production -------------------------------------------------------------------------------------

def test_complete_production_settings_load(tmp_path):
    config = load_in(tmp_path, production())

    assert config["MAILER_ENV"] == "production"
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://mailer:pw@db.internal:5432/mailer"
    assert config["SECRET_KEY"] == PRODUCTION["SECRET_KEY"]
    assert config["BASE_URL"] == "https://news.example.com"
    assert config["SMTP_URL"] is None
    assert not (tmp_path / "secret_key").exists()
    assert config["ERASURE_KEY"] == PRODUCTION["ERASURE_KEY"] and not (tmp_path / "erasure_key").exists()


@pytest.mark.parametrize("name", ["DATABASE_URL", "SECRET_KEY", "ERASURE_KEY", "BASE_URL", "MAIL_FROM",
                                  "CELERY_BROKER_URL"])
@pytest.mark.parametrize("how", ["missing", "empty"])
def test_production_without_a_required_setting_refuses_to_start(tmp_path, name, how):
    env = production(**{name: None if how == "missing" else ""})

    with pytest.raises(ConfigError, match=name):
        load_in(tmp_path, env)
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize("base_url", ["http://news.example.com", "HTTP://news.example.com"])
def test_production_refuses_a_plain_http_base_url(tmp_path, base_url):
    with pytest.raises(ConfigError, match="BASE_URL"):
        load_in(tmp_path, production(BASE_URL=base_url))


def test_postgres_scheme_is_rewritten_for_psycopg(tmp_path):
    config = load_in(tmp_path, production(DATABASE_URL="postgres://u:p@h/db"))
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@h/db"


# --- development defaults ----------------------------------------------------------------------------

def test_development_runs_with_nothing_configured(tmp_path):
    config = load_in(tmp_path, {})

    assert config["MAILER_ENV"] == "development"
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'mailer.db'}"
    assert config["CELERY_BROKER_URL"].startswith("sqla+sqlite:///")
    assert config["SMTP_URL"] is None
    assert config["OUTBOX_DIR"] == str(tmp_path / "outbox")
    assert config["SIGNUP_RATE_LIMIT"] == "5/minute;20/hour"
    assert config["EMBED_ORIGINS"] == []
    assert config["TRUSTED_PROXIES"] == 0  # X-Forwarded-For is anyone's to write until a proxy is declared


def test_development_keeps_one_secret_key_across_restarts(tmp_path):
    first = load_in(tmp_path, {})["SECRET_KEY"]
    second = load_in(tmp_path, {})["SECRET_KEY"]

    assert first == second and len(first) >= 32
    assert (tmp_path / "secret_key").read_text().strip() == first


def test_development_keeps_one_erasure_key_of_its_own_across_restarts(tmp_path):
    first, second = load_in(tmp_path, {}), load_in(tmp_path, {})

    assert first["ERASURE_KEY"] == second["ERASURE_KEY"] and len(first["ERASURE_KEY"]) >= 32
    assert (tmp_path / "erasure_key").read_text().strip() == first["ERASURE_KEY"] != first["SECRET_KEY"]


def test_production_says_what_a_missing_erasure_key_is_and_refuses_the_secret_key_as_one(tmp_path):
    with pytest.raises(ConfigError, match="ERASURE_KEY is not set.*erased so far are no longer recognised"):
        load_in(tmp_path, production(ERASURE_KEY=None))
    with pytest.raises(ConfigError, match="ERASURE_KEY must not be SECRET_KEY"):
        load_in(tmp_path, production(ERASURE_KEY=PRODUCTION["SECRET_KEY"]))


def test_mailer_instance_variable_moves_the_instance(tmp_path):
    config = load({"MAILER_INSTANCE": str(tmp_path / "elsewhere")})
    assert config["INSTANCE_PATH"] == str(tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "secret_key").exists()


# --- malformed values ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value"), [
    ("SMTP_URL", "http://mail.example.com:25"),
    ("SMTP_URL", "mail.example.com:25"),
    ("SMTP_URL", "smtpx://mail.example.com"),
    ("SIGNUP_RATE_LIMIT", "lots"),
    ("SIGNUP_RATE_LIMIT", "5/fortnight"),
    ("SIGNUP_RATE_LIMIT", "5/minute;many"),
    ("EMBED_ORIGINS", "blog.example.com"),
    ("EMBED_ORIGINS", "https://blog.example.com,ftp://files.example.com"),
    ("EMBED_ORIGINS", "https://"),
    ("DOWNLOAD_LINK_MAX_AGE", "7d"),
    ("DOWNLOAD_LINK_MAX_AGE", "one week"),
    ("DOWNLOAD_LINK_MAX_AGE", "3.5"),
    ("CONFIRM_LINK_MAX_AGE", "soon"),
    ("SWEEP_SECONDS", "5s"),
    ("SMTP_TIMEOUT", "30s"),
    ("BASE_URL", "news.example.com"),
    ("BASE_URL", "ftp://news.example.com"),
    ("MAIL_FROM", "Career Q&A <newsletter@example.com>\r\nBcc: everyone@example.com"),
    ("AUTHOR_TIME_ZONE", "Europe/Atlantis"),
    ("AUTHOR_TIME_ZONE", "+01:00"),
    ("AUTHOR_TIME_ZONE", "../../etc/passwd"),
    ("SUNSET_MONTHS", "six"),
    ("SUNSET_MONTHS", "-1"),
    ("SUNSET_ANSWER_DAYS", "0"),
])
@pytest.mark.parametrize("env", ["development", "production"])
def test_a_malformed_setting_is_refused_by_name(tmp_path, name, value, env):
    settings = production(**{name: value}) if env == "production" else {name: value}

    with pytest.raises(ConfigError, match=name):
        load_in(tmp_path, settings)


@pytest.mark.parametrize(("name", "value"), [
    pytest.param("SMTP_URL", "smtp://mail.example.com:99999", id="smtp-port-out-of-range"),
    pytest.param("SMTP_URL", "smtp://mail.example.com:twentyfive", id="smtp-port-not-a-number"),
    pytest.param("DOWNLOAD_LINK_MAX_AGE", "-3600", id="negative-download-max-age"),
    pytest.param("DOWNLOAD_LINK_MAX_AGE", "0", id="zero-download-max-age"),
    pytest.param("SMTP_TIMEOUT", "0", id="zero-smtp-timeout"),
    pytest.param("DIGEST_MAX_HARD_BOUNCE_RATE", "5%", id="bounce-rate-as-percent"),
    pytest.param("DIGEST_MAX_HARD_BOUNCE_RATE", "5", id="bounce-rate-above-one"),
    pytest.param("DIGEST_MAX_COMPLAINT_RATE", "0", id="zero-complaint-rate"),
    pytest.param("DIGEST_MAX_COMPLAINT_RATE", "often", id="complaint-rate-not-a-number"),
    pytest.param("DIGEST_RATE_MIN_SENT", "0", id="zero-min-sent"),
    pytest.param("DIGEST_RATE_MIN_SENT", "many", id="min-sent-not-a-number"),
])
def test_values_that_would_break_every_mail_are_refused(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        load_in(tmp_path, {name: value})


@pytest.mark.parametrize("url", ["smtp://mail.example.com:587?starttls=1", "smtps://u:p@mail.example.com:465",
                                 "smtp://127.0.0.1:1025"])
def test_good_smtp_urls_are_accepted(tmp_path, url):
    assert load_in(tmp_path, {"SMTP_URL": url})["SMTP_URL"] == url


def test_embed_origins_are_normalised(tmp_path):
    config = load_in(tmp_path, {"EMBED_ORIGINS": " https://Blog.Example.com/posts/ , http://localhost:8000 ,"})
    assert config["EMBED_ORIGINS"] == ["https://blog.example.com", "http://localhost:8000"]


def test_good_numbers_and_rate_limits_are_accepted(tmp_path):
    config = load_in(tmp_path, {"DOWNLOAD_LINK_MAX_AGE": "3600", "SIGNUP_RATE_LIMIT": "10 per minute;100/day",
                                "SMTP_TIMEOUT": "10"})
    assert config["DOWNLOAD_LINK_MAX_AGE"] == 3600
    assert config["SMTP_TIMEOUT"] == 10
    assert config["SIGNUP_RATE_LIMIT"] == "10 per minute;100/day"


def test_the_reputation_guard_has_defaults_and_takes_shares(tmp_path):
    defaults = load_in(tmp_path, {})
    assert (defaults["DIGEST_MAX_HARD_BOUNCE_RATE"], defaults["DIGEST_MAX_COMPLAINT_RATE"],
            defaults["DIGEST_RATE_MIN_SENT"]) == (0.05, 0.001, 200)
    config = load_in(tmp_path, {"DIGEST_MAX_HARD_BOUNCE_RATE": "0.02", "DIGEST_MAX_COMPLAINT_RATE": "0.003",
                                "DIGEST_RATE_MIN_SENT": "50"})
    assert (config["DIGEST_MAX_HARD_BOUNCE_RATE"], config["DIGEST_MAX_COMPLAINT_RATE"],
            config["DIGEST_RATE_MIN_SENT"]) == (0.02, 0.003, 50)


# --- the command line -----------------------------------------------------------------------------

def run_mailer(tmp_path: Path, args: list[str], **env) -> subprocess.CompletedProcess:
    # A clean environment: nothing from the developer's shell or CI may make a bad setting good.
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "MAILER_INSTANCE": str(tmp_path), **env}
    return subprocess.run([str(MAILER), *args], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [["--help"], ["db", "upgrade"]])
def test_cli_exits_2_naming_a_missing_production_setting(tmp_path, args):
    result = run_mailer(tmp_path, args, **production(DATABASE_URL=None))

    assert result.returncode == 2, result.stderr
    assert "Configuration error: DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_exits_2_naming_a_malformed_setting(tmp_path):
    result = run_mailer(tmp_path, ["db", "upgrade"], SMTP_URL="http://mail.example.com")

    assert result.returncode == 2
    assert "Configuration error: SMTP_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "mailer.db").exists()


def test_cli_runs_with_a_good_configuration(tmp_path):
    result = run_mailer(tmp_path, ["--help"])

    assert result.returncode == 0, result.stderr
    assert "db" in result.stdout and "Configuration error" not in result.stderr


def test_the_readers_clock_and_the_sunset_rule_default_to_utc_and_off(tmp_path):
    settings = load_in(tmp_path, {})
    assert (settings["AUTHOR_TIME_ZONE"], settings["SUNSET_MONTHS"], settings["SUNSET_ANSWER_DAYS"]) == ("UTC", 0, 14)
    settings = load_in(tmp_path, {"AUTHOR_TIME_ZONE": " Europe/London ", "SUNSET_MONTHS": "6"})
    assert (settings["AUTHOR_TIME_ZONE"], settings["SUNSET_MONTHS"]) == ("Europe/London", 6)
