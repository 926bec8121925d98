"""mailer: a self-hosted newsletter and lead-magnet mailer."""
from __future__ import annotations

from dotenv import load_dotenv
from flask import Flask

from . import config
from .extensions import csrf, db, limiter, migrate, ping_when_idle


def create_app(test_config: dict | None = None) -> Flask:
    """Defaults, then the environment (and `.env`), then `test_config`."""
    load_dotenv(config.PROJECT_ROOT / ".env")
    settings = config.load()
    app = Flask(__name__, template_folder=str(config.PROJECT_ROOT / "templates"),
                instance_path=settings["INSTANCE_PATH"])
    app.config.update(settings)
    app.config.update(test_config or {})
    register_logging(app)
    register_proxies(app)
    register_body_limits(app)
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    register_metrics(app)
    return app


def register_logging(app: Flask) -> None:
    from .ops import logs

    logs.init_app(app)  # LOG_FORMAT=json: one JSON object per line; request and delivery ids on each line


def register_metrics(app: Flask) -> None:
    from .ops import metrics

    metrics.init_app(app)


def register_proxies(app: Flask) -> None:
    # Behind N reverse proxies the client IP (rate limits, consent records) is the Nth X-Forwarded-For from the right.
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def register_body_limits(app: Flask) -> None:
    from .web import body_limits, nul_bytes

    body_limits.init_app(app)  # every endpoint's limit holds for chunked bodies too (413)
    nul_bytes.init_app(app)  # a NUL in the address, the query or a form field is a 400 before any view


def register_extensions(app: Flask) -> None:
    from .json_input import RequestJSON
    from .tasks import celery_init_app

    app.json = RequestJSON(app)
    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            ping_when_idle(engine)  # instead of pool_pre_ping's round trip on every checkout
    migrate.init_app(app, db, directory=str(config.PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://")
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    if app.config["RATELIMIT_STORAGE_URI"].startswith("redis"):
        # A Redis that stops answering must cost a signup a second, then the in-memory fallback takes over.
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 1, "socket_timeout": 1})
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", False)  # a 429 still says Retry-After (web/errors.py)
    limiter.init_app(app)
    celery_init_app(app)


def register_blueprints(app: Flask) -> None:
    from . import admin, api
    from .mail import identity
    from .mail.messages import paragraphs
    from .web import (archive, brand, devmail, engagement, errors, ids, keep, preferences, public, security, thanks,
                      unsubscribe, webhooks)

    app.url_map.converters["int"] = ids.RowId  # before any rule is added: every <int:…> is bounded
    app.add_template_filter(paragraphs)
    identity.init_app(app)  # `newsletter` in every template: the name, logo, colour and address from the settings
    app.register_blueprint(public.bp)
    app.register_blueprint(thanks.bp)
    app.register_blueprint(unsubscribe.bp)
    app.register_blueprint(engagement.bp)
    app.register_blueprint(preferences.bp)
    app.register_blueprint(keep.bp)
    app.register_blueprint(archive.bp)
    app.register_blueprint(brand.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(devmail.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(admin.bp)
    errors.register(app)
    security.register(app)


def register_commands(app: Flask) -> None:
    from .cli import register

    register(app)
