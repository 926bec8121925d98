"""Who the newsletter is: its name, sender name, reply-to, blog, logo, colour, postal address and welcome words.

`current()` is the one accessor every page, the embed, the console and every mail read them through: the console's
row over the defaults from the environment, read once per request or batch of mail (kept in `g`) and never kept
longer, so a change shows on every web host and worker with the next page or mail.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.utils import formataddr, parseaddr

from flask import current_app, g
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.local import LocalProxy

from ..extensions import db
from ..models import NewsletterSettings

DEFAULT_NAME = "Career Q&A"
DEFAULT_ACCENT = "#1f4e79"
DEFAULT_WELCOME = (
    "Welcome, and thank you for subscribing.\n\n"
    "Every so often you will get a short email with the newest {newsletter} posts: real questions from readers "
    "about internships, offers, managers and the mix of generations at work, with straight answers.\n\n"
    "Have a question of your own? Reply to this email.")
SETTINGS_ID = 1


@dataclass(frozen=True)
class Identity:
    name: str
    sender_name: str
    sender_address: str  # MAIL_FROM's address: DKIM and the bounce domain depend on it, so it stays in the environment
    reply_to: str | None
    blog_url: str | None
    logo_url: str | None  # a logo elsewhere, as typed
    logo_hash: str | None  # an uploaded logo, served by /brand/logo/<hash>
    accent: str
    postal_address: str
    welcome_text: str
    archive_enabled: bool
    version: str  # changes with every save: the key of anything rendered from these values

    @property
    def version_tag(self) -> str:
        """A short tag of the version, for URLs that may be cached for as long as the settings stay the same."""
        return hashlib.sha256(self.version.encode()).hexdigest()[:12]

    @property
    def mail_from(self) -> str:
        """The From header's value: the sender name with MAIL_FROM's address."""
        return formataddr((self.sender_name, self.sender_address)) if self.sender_name else self.sender_address

    @property
    def logo(self) -> str | None:
        """The logo's absolute URL (mail needs one), the upload before a typed URL; None without a logo."""
        if self.logo_hash:
            return f"{current_app.config['BASE_URL']}/brand/logo/{self.logo_hash}"
        return self.logo_url

    @property
    def postal_lines(self) -> list[str]:
        return [line.strip() for line in self.postal_address.splitlines() if line.strip()]

    @property
    def welcome_words(self) -> str:
        """The default welcome text (Markdown) with the newsletter's name in place of `{newsletter}`."""
        return self.welcome_text.replace("{newsletter}", self.name)

    def list_id(self) -> str:
        """LIST_ID's label (fixed: filters depend on it) with the newsletter's name as its phrase."""
        label = parseaddr(current_app.config["LIST_ID"])[1] or current_app.config["LIST_ID"].strip("<> ")
        return f"{self.name} <{label}>"

    def archive_url(self, digest_id: int) -> str | None:
        return f"{current_app.config['BASE_URL']}/archive/{digest_id}" if self.archive_enabled else None


def defaults(config) -> dict:
    """The values before anything is set in the console: from MAIL_FROM and BLOG_URL, else today's words."""
    display = parseaddr(config["MAIL_FROM"])[0].strip()
    return {"newsletter_name": display or DEFAULT_NAME, "sender_name": display or DEFAULT_NAME, "reply_to": None,
            "blog_url": config.get("BLOG_URL"), "logo_url": None, "accent_colour": DEFAULT_ACCENT,
            "postal_address": "", "welcome_text": DEFAULT_WELCOME}


def stored(session) -> NewsletterSettings | None:
    return session.get(NewsletterSettings, SETTINGS_ID)


def read(session, config) -> Identity:
    # On a connection of its own, given back at once: reading the settings leaves no transaction open in the
    # caller's session (a signup's own statement runs on a connection of its own too).
    table = NewsletterSettings.__table__
    try:
        with session.get_bind().connect() as connection:
            row = connection.execute(select(table).where(table.c.id == SETTINGS_ID)).first()
    except SQLAlchemyError:  # the database is down: the error page still gets a name (the defaults), not a 500
        row = None
    return _identity(row, config)


def _identity(row: NewsletterSettings | None, config) -> Identity:
    values = defaults(config)
    if row is not None:
        values.update({k: getattr(row, k) for k in values if getattr(row, k) not in (None, "")})
    return Identity(name=values["newsletter_name"], sender_name=values["sender_name"],
                    sender_address=parseaddr(config["MAIL_FROM"])[1], reply_to=values["reply_to"],
                    blog_url=values["blog_url"], logo_url=values["logo_url"],
                    logo_hash=row.logo_hash if row else None, accent=values["accent_colour"],
                    postal_address=values["postal_address"], welcome_text=values["welcome_text"],
                    archive_enabled=row.archive_enabled if row else True,
                    version=row.updated_at.isoformat() if row else "default")


def current() -> Identity:
    """The newsletter's identity for this request or task (read once, kept until it ends)."""
    if "newsletter_identity" not in g:
        g.newsletter_identity = read(db.session, current_app.config)
    return g.newsletter_identity


def without_database() -> None:
    """What answers while the database may be down (an error page) takes the defaults, unless already read."""
    if "newsletter_identity" not in g:
        g.newsletter_identity = _identity(None, current_app.config)


def forget() -> None:
    """Read the settings again at the next current(): after a save, or at the start of a batch of mail."""
    g.pop("newsletter_identity", None)


def init_app(app) -> None:
    # Lazy: a template that never names `newsletter` costs no query.
    app.context_processor(lambda: {"newsletter": LocalProxy(current)})
