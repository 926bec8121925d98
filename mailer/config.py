"""Settings from the environment (and `.env`), checked once at start-up."""
from __future__ import annotations

import ipaddress
import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from limits import parse_many

from .keys import load_private_key, read_pem, sendgrid_public_key

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable and the fix."""


def _origin(value: str, name: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name}: {value!r} is not an origin like https://blog.example.com")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a whole number") from None


def _positive_int(env: dict, name: str, default: int) -> int:
    value = _int(env, name, default)
    if value <= 0:
        raise ConfigError(f"{name}: {value} is not a positive number of seconds")
    return value


def digest_crontab(value: str):
    """Celery's crontab from the five standard fields (minute hour day-of-month month day-of-week)."""
    from celery.schedules import crontab

    fields = value.split()
    if len(fields) != 5:
        raise ValueError("needs five fields")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                   day_of_week=day_of_week)


def _crontab(value: str) -> str | None:
    """DIGEST_SCHEDULE: five crontab fields, e.g. '0 9 * * mon' for Mondays at 09:00 UTC; empty: no schedule."""
    if not value.strip():
        return None
    try:
        digest_crontab(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"DIGEST_SCHEDULE: {value!r} is not a crontab like '0 9 * * mon' ({exc})") from None
    return value.strip()


def _abuse_guards(env: dict) -> dict:
    """Signup abuse limits: each on by default; the error names the variable and what it takes."""
    def whole(name: str, default: int) -> int:
        value = _int(env, name, default)
        if value < 0:
            raise ConfigError(f"{name}: {value} must be 0 or more")
        return value

    form_min, form_max = whole("FORM_MIN_SECONDS", 2), whole("FORM_MAX_SECONDS", 2 * 3600)
    if form_max <= form_min:
        raise ConfigError(f"FORM_MAX_SECONDS ({form_max}) must be more than FORM_MIN_SECONDS ({form_min})")
    provider = env.get("CAPTCHA_PROVIDER", "").strip().lower() or None
    if provider not in (None, "turnstile", "hcaptcha"):
        raise ConfigError(f"CAPTCHA_PROVIDER: {provider!r} is not turnstile or hcaptcha (leave it empty for no captcha)")
    if provider and not (env.get("CAPTCHA_SITE_KEY") and env.get("CAPTCHA_SECRET")):
        raise ConfigError(f"CAPTCHA_PROVIDER={provider} needs CAPTCHA_SITE_KEY and CAPTCHA_SECRET from the provider's dashboard")
    return {
        "CONFIRMATION_HOURLY_CAP": whole("CONFIRMATION_HOURLY_CAP", 500),  # 0: no cap
        "FORM_MIN_SECONDS": form_min,
        "FORM_MAX_SECONDS": form_max,
        "CAPTCHA_PROVIDER": provider,
        "CAPTCHA_SITE_KEY": env.get("CAPTCHA_SITE_KEY") or None,
        "CAPTCHA_SECRET": env.get("CAPTCHA_SECRET") or None,
        "CAPTCHA_TIMEOUT": _positive_int(env, "CAPTCHA_TIMEOUT", 5),
        "UNCONFIRMED_PURGE_DAYS": whole("UNCONFIRMED_PURGE_DAYS", 7),  # 0: keep unconfirmed signups
        **_networks(env),
    }


def _scanners(env: dict) -> dict:
    """What makes a click or an open a machine's besides its own evidence (posts/scanners)."""
    seconds = _int(env, "SCANNER_SECONDS", 5)
    if seconds < 0:
        raise ConfigError(f"SCANNER_SECONDS: {seconds} must be 0 or more (0: no rule on the time after delivery)")
    networks = [n.strip() for n in env.get("SCANNER_NETWORKS", "").split(",") if n.strip()]
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(f"SCANNER_NETWORKS: {network!r} is not a network like 40.94.0.0/16 or "
                              "2a01:111::/32") from None
    return {"SCANNER_SECONDS": seconds, "SCANNER_NETWORKS": networks}


def _networks(env: dict) -> dict:
    """How addresses group into clients (rate limits, login lockout) and networks (their share of the cap)."""
    def prefix(name: str, default: int, bits: int, example: str) -> int:
        value = _int(env, name, default)
        if not 1 <= value <= bits:
            raise ConfigError(f"{name}: {value} is not a prefix length from 1 to {bits} (like {example})")
        return value

    raw = env.get("CONFIRMATION_NETWORK_SHARE", "").strip() or "0.1"
    try:
        share = float(raw)
    except ValueError:
        share = float("nan")
    if not 0 < share <= 1:  # also false for nan
        raise ConfigError(f"CONFIRMATION_NETWORK_SHARE: {raw!r} is not a fraction of the hourly cap above 0 and at "
                          "most 1 (like 0.1 for 10 %; 1 lets one network take the whole cap)")
    return {
        "IPV6_PREFIX": prefix("IPV6_PREFIX", 64, 128, "64: one subscriber line"),
        "NETWORK_IPV4_PREFIX": prefix("NETWORK_IPV4_PREFIX", 24, 32, "24"),
        "NETWORK_IPV6_PREFIX": prefix("NETWORK_IPV6_PREFIX", 48, 128, "48"),
        "CONFIRMATION_NETWORK_SHARE": share,
    }


KEY_ADVICE = {
    "SECRET_KEY": "",
    "ERASURE_KEY": " (a key of its own, not SECRET_KEY; keep it: with another key the addresses erased so far are "
                   "no longer recognised, see the README)",
}


def _instance_key(env: dict, instance: Path, production: bool, name: str) -> str:
    """A key from the environment; in development one generated once into the instance folder."""
    if env.get(name):
        return env[name]
    if production:
        raise ConfigError(f"{name} is not set: generate one with "
                          f"`python -c 'import secrets; print(secrets.token_hex(32))'`{KEY_ADVICE[name]}")
    # Development keeps each key on disk so links in mail (and erasure records) survive a restart.
    path = instance / name.lower()
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _deliverability(env: dict) -> dict:
    """DKIM signing, the VERP bounce domain, and the bounce webhooks' credentials (the README, Deliverability)."""
    key, selector = env.get("DKIM_PRIVATE_KEY", "").strip(), env.get("DKIM_SELECTOR", "").strip()
    for name in ("DKIM_SELECTOR", "DKIM_DOMAIN", "BOUNCE_DOMAIN"):
        if env.get(name) and not _HOSTNAME.match(env[name].strip()):
            raise ConfigError(f"{name}: {env[name].strip()[:100]!r} is not a DNS name like mail2025 or bounces.example.com")
    if key:
        try:
            load_private_key(key)
        except ValueError as exc:
            raise ConfigError(f"DKIM_PRIVATE_KEY {exc}; generate one with `openssl genrsa 2048` (see `mailer dns-records`)") from None
        if not selector:
            raise ConfigError("DKIM_SELECTOR is not set; DKIM_PRIVATE_KEY needs it (a name like mail2025, see `mailer dns-records`)")
    sendgrid = env.get("SENDGRID_WEBHOOK_PUBLIC_KEY", "").strip()
    if sendgrid:
        try:
            sendgrid_public_key(sendgrid)
        except ValueError as exc:
            raise ConfigError(f"SENDGRID_WEBHOOK_PUBLIC_KEY {exc}: paste the Signed Event Webhook's verification key") from None
    unsubscribe_mailbox = _unsubscribe_mailbox(env.get("UNSUBSCRIBE_MAILBOX", "").strip())
    postmark = (env.get("POSTMARK_WEBHOOK_USER", ""), env.get("POSTMARK_WEBHOOK_PASSWORD", ""))
    if any(postmark) and not all(postmark):
        raise ConfigError("POSTMARK_WEBHOOK_USER and POSTMARK_WEBHOOK_PASSWORD go together: set both, or neither")
    return {
        "DKIM_PRIVATE_KEY": read_pem(key) if key else None,
        "DKIM_SELECTOR": selector or None,
        "DKIM_DOMAIN": env.get("DKIM_DOMAIN", "").strip().lower() or None,  # None: MAIL_FROM's domain
        "BOUNCE_DOMAIN": env.get("BOUNCE_DOMAIN", "").strip().lower() or None,  # None: MAIL_FROM's domain
        "UNSUBSCRIBE_MAILBOX": unsubscribe_mailbox,  # None: List-Unsubscribe has the https link alone
        "SES_TOPIC_ARNS": [arn.strip() for arn in env.get("SES_TOPIC_ARNS", "").split(",") if arn.strip()],
        "POSTMARK_WEBHOOK_USER": postmark[0] or None,
        "POSTMARK_WEBHOOK_PASSWORD": postmark[1] or None,
        "SENDGRID_WEBHOOK_PUBLIC_KEY": sendgrid or None,
    }


_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*/=?^_`{|}~-]+)*$")  # no '+': ours


def _unsubscribe_mailbox(value: str) -> str | None:
    """UNSUBSCRIBE_MAILBOX: the address whose +tagged forms unsubscribe by mail (List-Unsubscribe's mailto:)."""
    if not value:
        return None
    local, _, domain = value.rpartition("@")
    if not _LOCAL_PART.match(local) or not _HOSTNAME.match(domain):
        raise ConfigError(f"UNSUBSCRIBE_MAILBOX: {value[:100]!r} is not an address like unsubscribe@example.com "
                          "(no '+' in it: each reader's address adds +<signed id>)")
    if local.lower() == "bounces":
        raise ConfigError("UNSUBSCRIBE_MAILBOX must not be the bounces@ mailbox, which receives bounces (VERP): "
                          "use another local part, such as unsubscribe@")
    return f"{local}@{domain.lower()}"


def _rate(env: dict, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a share like {default} ({default:.1%})") from None
    if not 0 < value <= 1:
        raise ConfigError(f"{name}: {raw!r} must be a share above 0 and at most 1, like {default} for {default:.1%}")
    return value


def _reputation(env: dict) -> dict:
    """When a digest pauses itself for its bounces or complaints (posts/reputation; the README, settings)."""
    min_sent = _int(env, "DIGEST_RATE_MIN_SENT", 200)
    if min_sent < 1:
        raise ConfigError(f"DIGEST_RATE_MIN_SENT: {min_sent} must be 1 or more (mails of a digest sent before "
                          "its rates count)")
    return {
        "DIGEST_MAX_HARD_BOUNCE_RATE": _rate(env, "DIGEST_MAX_HARD_BOUNCE_RATE", 0.05),
        "DIGEST_MAX_COMPLAINT_RATE": _rate(env, "DIGEST_MAX_COMPLAINT_RATE", 0.001),
        "DIGEST_RATE_MIN_SENT": min_sent,
    }


def _readers_clock_and_sunset(env: dict) -> dict:
    """The zone of readers whose browser told none, and the sunset rule (the README, Keeping the list healthy)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    zone = env.get("AUTHOR_TIME_ZONE", "").strip() or "UTC"
    try:
        ok = zone in available_timezones() and ZoneInfo(zone) is not None
    except (ZoneInfoNotFoundError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"AUTHOR_TIME_ZONE: {zone[:100]!r} is not a time zone name like Europe/London or "
                          "America/New_York (the IANA names; empty: UTC)")
    months, answer_days = _int(env, "SUNSET_MONTHS", 0), _int(env, "SUNSET_ANSWER_DAYS", 14)
    if months < 0 or months > 120:
        raise ConfigError(f"SUNSET_MONTHS: {months} must be 0 (the sunset rule off) or a number of months up to 120")
    if answer_days < 1:
        raise ConfigError(f"SUNSET_ANSWER_DAYS: {answer_days} must be 1 or more (days a reader has to answer)")
    return {"AUTHOR_TIME_ZONE": zone, "SUNSET_MONTHS": months, "SUNSET_ANSWER_DAYS": answer_days}


def _operations(env: dict) -> dict:
    """Logs and metrics (the README, Operations)."""
    log_format = env.get("LOG_FORMAT", "text").strip().lower() or "text"
    if log_format not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT: {log_format!r} is not text or json")
    port = _int(env, "WORKER_METRICS_PORT", 0)
    if not 0 <= port <= 65535:
        raise ConfigError(f"WORKER_METRICS_PORT: {port} is not a port from 1 to 65535 (0 or empty: no endpoint)")
    return {
        "LOG_FORMAT": log_format,
        "METRICS_TOKEN": env.get("METRICS_TOKEN") or None,  # None: /metrics answers loopback only
        "WORKER_METRICS_PORT": port,
        "WORKER_METRICS_ADDR": env.get("WORKER_METRICS_ADDR") or "127.0.0.1",
    }


def load(env: dict | None = None, instance: Path | None = None) -> dict:
    """Build the app's settings from `env` (the process environment by default)."""
    env = dict(os.environ if env is None else env)
    instance = Path(env.get("MAILER_INSTANCE", instance or PROJECT_ROOT / "instance"))
    production = env.get("MAILER_ENV", "development") == "production"
    required = ["DATABASE_URL", "CELERY_BROKER_URL", "BASE_URL", "MAIL_FROM"] if production else []
    for name in required:
        if not env.get(name):
            raise ConfigError(f"{name} is not set; production (MAILER_ENV=production) needs it, see the configuration table in README.md")
    base_url = _base_url(env, production)
    if production and env.get("ERASURE_KEY") == env.get("SECRET_KEY"):
        raise ConfigError("ERASURE_KEY must not be SECRET_KEY: give it a key of its own, so that rotating SECRET_KEY "
                          "leaves the erasure records readable")
    return {
        "MAILER_ENV": "production" if production else "development",
        "INSTANCE_PATH": str(instance),
        "SECRET_KEY": _instance_key(env, instance, production, "SECRET_KEY"),
        # Erasure records are HMACs under this key (people/privacy.erasure_record): not reversible by hashing a list.
        "ERASURE_KEY": _instance_key(env, instance, production, "ERASURE_KEY"),
        "SECRET_KEY_FALLBACKS": [k.strip() for k in env.get("SECRET_KEY_FALLBACKS", "").split(",") if k.strip()],
        **_stores(env, instance),
        **_sending(env, base_url),
        "BASE_URL": base_url,
        "FEED_URL": env.get("FEED_URL") or None,
        "EMBED_ORIGINS": [_origin(o, "EMBED_ORIGINS") for o in env.get("EMBED_ORIGINS", "").split(",") if o.strip()],
        "SIGNUP_RATE_LIMIT": _rate_limit(env.get("SIGNUP_RATE_LIMIT", "5/minute;20/hour")),
        "DOWNLOAD_LINK_MAX_AGE": _positive_int(env, "DOWNLOAD_LINK_MAX_AGE", 7 * 24 * 3600),
        "CONFIRM_LINK_MAX_AGE": _positive_int(env, "CONFIRM_LINK_MAX_AGE", 7 * 24 * 3600),
        "TRUSTED_PROXIES": _int(env, "TRUSTED_PROXIES", 0),
        "FEED_POLL_SECONDS": _int(env, "FEED_POLL_SECONDS", 900),
        "DIGEST_SCHEDULE": _crontab(env.get("DIGEST_SCHEDULE", "")),
        "BLOG_URL": env.get("BLOG_URL") or None,
        # Post links in digests go through /c/<token> unless CLICK_TRACKING=0; the open pixel only with OPEN_TRACKING=1.
        "CLICK_TRACKING": env.get("CLICK_TRACKING", "1").strip().lower() not in ("0", "false", "no", "off"),
        "OPEN_TRACKING": env.get("OPEN_TRACKING", "0").strip().lower() in ("1", "true", "yes", "on"),
        **_scanners(env),
        **_abuse_guards(env),
        **_deliverability(env),
        **_reputation(env),
        **_readers_clock_and_sunset(env),
        **_operations(env),
    }


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")  # a trial on one machine: its links reach nobody else anyway


def _base_url(env: dict, production: bool) -> str:
    base_url = env.get("BASE_URL", "http://127.0.0.1:5000").rstrip("/")
    if urlsplit(base_url).scheme not in ("http", "https") or not urlsplit(base_url).netloc:
        raise ConfigError(f"BASE_URL: {base_url!r} is not an http(s) URL")
    if not base_url.isascii() or re.search(r'[\s<>",]', base_url) or len(base_url) > 500:
        # Every list mail's List-Unsubscribe header carries it in angle brackets, on one line (RFC 2369).
        raise ConfigError("BASE_URL must be an ASCII URL of at most 500 characters without spaces, quotes, commas "
                          "or angle brackets (write an international domain name in its xn-- form)")
    if production and not base_url.startswith("https://") and urlsplit(base_url).hostname not in LOCAL_HOSTS:
        raise ConfigError("BASE_URL must be https in production: mail clients need https unsubscribe links "
                          "(http only for a trial on this machine, at http://127.0.0.1:PORT or http://localhost:PORT)")
    return base_url


def _rate_limit(rate_limit: str) -> str:
    try:
        parse_many(rate_limit)
    except ValueError:
        raise ConfigError(f"SIGNUP_RATE_LIMIT: {rate_limit!r} is not like '5/minute;20/hour'") from None
    return rate_limit


def _stores(env: dict, instance: Path) -> dict:
    """Where the data lives: the database, the task broker, Redis, the local outbox."""
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'mailer.db'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://"):]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "CELERY_BROKER_URL": env.get("CELERY_BROKER_URL") or f"sqla+sqlite:///{instance / 'broker.db'}",
        # Two deployments (or test runs) sharing one Redis keep apart by queue name.
        "CELERY_QUEUE": env.get("CELERY_QUEUE") or "celery",
        "REDIS_URL": env.get("REDIS_URL") or None,
        "OUTBOX_DIR": str(instance / "outbox"),
    }


def _sending(env: dict, base_url: str) -> dict:
    """How mail leaves: the SMTP server, the sender, and the pace of the workers."""
    smtp_url = env.get("SMTP_URL") or None
    if smtp_url and urlsplit(smtp_url).scheme not in ("smtp", "smtps"):
        raise ConfigError(f"SMTP_URL: scheme must be smtp:// or smtps://, got {smtp_url.split(':', 1)[0]!r}")
    if smtp_url:
        try:
            urlsplit(smtp_url).port
        except ValueError:
            raise ConfigError("SMTP_URL: the port must be a number from 1 to 65535") from None
    mail_from = env.get("MAIL_FROM", "Career Q&A <newsletter@localhost>")
    if any(c in mail_from for c in "\r\n\0"):
        raise ConfigError("MAIL_FROM contains a line break")
    return {
        "SMTP_URL": smtp_url,
        "SMTP_TIMEOUT": _positive_int(env, "SMTP_TIMEOUT", 30),
        "MAIL_FROM": mail_from,
        "LIST_ID": env.get("LIST_ID") or f"Career Q&A <newsletter.{urlsplit(base_url).hostname}>",
        "SWEEP_SECONDS": _int(env, "SWEEP_SECONDS", 5),
        "SEND_RATE": _int(env, "SEND_RATE", 0),
        "LEASE_SECONDS": _int(env, "LEASE_SECONDS", 300),
        "SEND_WINDOW": _positive_int(env, "SEND_WINDOW", 20),
        "SEND_BATCH": _positive_int(env, "SEND_BATCH", 1000),
        "RETRY_BASE_SECONDS": _int(env, "RETRY_BASE_SECONDS", 30),
        "RETRY_DEADLINE": _int(env, "RETRY_DEADLINE", 3 * 24 * 3600),
    }
