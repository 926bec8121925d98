"""The stored world: subscribers, their consent, lead magnets and the outbox of deliveries."""
from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    false,
    func,
    text,
    true,
)
from sqlalchemy.orm import Mapped, WriteOnlyMapped, deferred, mapped_column, relationship

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes even for timezone-aware columns; naive means UTC here."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class Status(str, enum.Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class DeliveryStatus(str, enum.Enum):
    QUEUED = "queued"      # due at next_attempt_at
    SENDING = "sending"    # claimed by a worker until lease_until
    SENT = "sent"
    FAILED = "failed"      # permanent: 5xx or retries exhausted
    SKIPPED = "skipped"    # the subscriber may no longer be mailed
    HELD = "held"          # its digest is paused


Timestamp = DateTime(timezone=True)


class Subscriber(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased, so the unique index is case-insensitive on every database.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    # The mailbox behind the address (people/mailboxes.mailbox_of: no +tag, Gmail without dots), which the
    # confirmation throttle counts by; set by every path that adds a subscriber.
    mailbox: Mapped[str | None] = mapped_column(String(254), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING.value, index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # When a bounce or complaint stopped their mail: a confirmation link older than a complaint confirms nothing.
    suppressed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Welcome sequence progress: how many steps were owed (0: not begun; an import confirmed elsewhere counts 1),
    # and when to look for the next one (NULL: none left). Which steps were owed, the ledger's welcome_key rows say.
    welcome_step: Mapped[int] = mapped_column(default=0)
    welcome_next_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    # Their choice on the preference page: every digest, the monthly summary, or none (welcome mails still come).
    digest_frequency: Mapped[str] = mapped_column(String(10), default="every", server_default="every")
    paused_until: Mapped[datetime | None] = mapped_column(Timestamp)
    # Brought in by an import, not a signup: the dashboard counts them apart, so one file does not drown the forms.
    imported: Mapped[bool] = mapped_column(default=False, server_default=false())
    # An IANA zone name ("Europe/Berlin") as the signup's browser told it (people/time_zones): a digest sent at a
    # local time reaches them at that time on their clock. NULL: unknown, the author's zone (AUTHOR_TIME_ZONE).
    time_zone: Mapped[str | None] = mapped_column(String(64))
    # The sunset rule (people/sunset): when they were asked whether they still want digests, when they last said
    # yes ("keep me", or coming back), and when digests stopped because the question went unanswered.
    sunset_asked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    sunset_kept_at: Mapped[datetime | None] = mapped_column(Timestamp)
    sunset_at: Mapped[datetime | None] = mapped_column(Timestamp)

    consents: WriteOnlyMapped[Consent] = relationship(back_populates="subscriber", passive_deletes=True)
    deliveries: WriteOnlyMapped[Delivery] = relationship(back_populates="subscriber", passive_deletes=True)

    __table_args__ = (
        # Prefix searches (LIKE 'abc%') use a btree on PostgreSQL only with pattern operators.
        Index("ix_subscriber_email_prefix", "email", postgresql_ops={"email": "text_pattern_ops"}),
        Index("ix_subscriber_name_prefix", func.lower(name), postgresql_ops={"lower_1": "text_pattern_ops"}),
    )

    @property
    def paused(self) -> bool:
        """Asked for a break from digests (the preference page) that has not ended yet."""
        return self.paused_until is not None and aware(self.paused_until) > utcnow()


class Consent(db.Model):
    """What a person agreed to, when, and where: one row per signup request."""

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    magnet_id: Mapped[int | None] = mapped_column(ForeignKey("lead_magnet.id", ondelete="SET NULL"))
    source_url: Mapped[str | None] = mapped_column(String(2000))
    form: Mapped[str] = mapped_column(String(20))  # snippet, iframe, script, api, import, resubscribe
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    consent_text: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(Timestamp)

    subscriber: Mapped[Subscriber] = relationship(back_populates="consents")
    magnet: Mapped[LeadMagnet | None] = relationship()


class LeadMagnet(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # Relative to mailer/magnets/ for the files shipped with the package; empty when the file is an Upload (one
    # uploaded in the console); an absolute path for one uploaded before uploads were kept in the database.
    file: Mapped[str] = mapped_column(String(500))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100), default="application/pdf")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Upload(db.Model):
    """A file uploaded in the console (a magnet's, or a CSV being imported), kept in parts so every host reads it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    # A magnet's file: its newest upload is the one served; the older ones are deleted when it is replaced.
    magnet_id: Mapped[int | None] = mapped_column(ForeignKey("lead_magnet.id", ondelete="CASCADE"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    part_size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class UploadPart(db.Model):
    upload_id: Mapped[int] = mapped_column(ForeignKey("upload.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class SubscriberImport(db.Model):
    """A CSV uploaded in the console, imported a part at a time by whichever web host or worker holds its lease."""

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    upload_id: Mapped[int | None] = mapped_column(ForeignKey("upload.id", ondelete="SET NULL"))  # gone once done
    state: Mapped[dict] = mapped_column(JSON)  # the counts, offset and report the progress page shows
    busy_until: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class Download(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    magnet_id: Mapped[int] = mapped_column(ForeignKey("lead_magnet.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


# A signup's confirmation mail is owed once per consent, under this key; an import owes its own as
# "import-confirmation:<consent id>", which the hourly cap does not count.
CONFIRMATION_KEY = "confirmation:"
# SQL, as the partial index is defined and as the cap's count must say it for PostgreSQL to use that index.
SIGNUP_CONFIRMATIONS = f"kind = 'confirmation' AND dedupe_key LIKE '{CONFIRMATION_KEY}%'"


def confirmation_key(consent_id: int) -> str:
    return f"{CONFIRMATION_KEY}{consent_id}"


# Mail owed to many readers at once, claimed after the mail a person waits for (the sender's NOT_BULK).
BULK_KINDS = ("digest", "sunset")
NOT_BULK = f"kind NOT IN ({', '.join(repr(kind) for kind in BULK_KINDS)})"


class Delivery(db.Model):
    """One email the system owes: written before any task is queued, sent at most once."""

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # confirmation, magnet, welcome, digest, sunset, test
    # NULL only for a test send to an address that need not be a subscriber (`recipient`).
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    recipient: Mapped[str | None] = mapped_column(String(254))
    # No foreign key on purpose: checking it for each of a million digest rows costs ~10 s on PostgreSQL,
    # and digests are never deleted (cancelling is a status).
    digest_id: Mapped[int | None] = mapped_column()
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(10), default=DeliveryStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(Timestamp)
    message_id: Mapped[str | None] = mapped_column(String(250))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # When a machine last followed the digest's hidden link (posts/scanners): its clicks then are no person's.
    hidden_link_at: Mapped[datetime | None] = deferred(mapped_column(Timestamp))

    subscriber: Mapped[Subscriber | None] = relationship(back_populates="deliveries")

    __table_args__ = (
        # The claim query reads only rows still owed, in this order: a partial index stays small however many
        # were sent, and a batch is its first rows (no sort of everything owed).
        Index("ix_delivery_due", "next_attempt_at", "id", postgresql_where=text("status IN ('queued', 'sending')"),
              sqlite_where=text("status IN ('queued', 'sending')")),
        # The same for what a person is waiting for (confirmations, download links, welcomes): claimed first.
        # Not the mail owed to many at once (BULK_KINDS): a day's sunset questions must not hold up a signup.
        Index("ix_delivery_due_for_people", "next_attempt_at", "id",
              postgresql_where=text(f"status IN ('queued', 'sending') AND {NOT_BULK}"),
              sqlite_where=text(f"status IN ('queued', 'sending') AND {NOT_BULK}")),
        Index("ix_delivery_digest_status", "digest_id", "status"),
        # The hourly cap on signup confirmations counts these, whatever the size of the ledger.
        Index("ix_delivery_signup_confirmations", "created_at", postgresql_where=text(SIGNUP_CONFIRMATIONS),
              sqlite_where=text(SIGNUP_CONFIRMATIONS)),
    )


class Tally(db.Model):
    """An exact count the dashboard and the stats API read (people/tallies): kept by the triggers of migration 0027."""

    counter: Mapped[str] = mapped_column(String(60), primary_key=True)  # e.g. status:confirmed, signups:2026-12-03
    value: Mapped[int] = mapped_column(BigInteger)


# Each statement's change to the tallies, appended in its transaction (no row locked, so none waits); beat folds
# them into `tally`. No key: nothing reads one row of it.
tally_delta = Table("tally_delta", db.metadata, Column("counter", String(60), nullable=False),
                    Column("n", BigInteger, nullable=False))


class DigestStatus(str, enum.Enum):
    SCHEDULED = "scheduled"  # waits for its send_at: its posts are chosen, no mail is owed yet
    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"


digest_post = Table(
    "digest_post", db.Model.metadata,
    Column("digest_id", ForeignKey("digest.id", ondelete="CASCADE"), primary_key=True),
    Column("post_id", ForeignKey("post.id", ondelete="CASCADE"), primary_key=True, index=True),
    Column("position", Integer, nullable=False, default=0),
)


class Post(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # The feed's GUID (or the link when it has none): what makes a re-fetch update instead of duplicate.
    guid: Mapped[str] = mapped_column(String(500), unique=True)
    url: Mapped[str] = mapped_column(String(2000))
    title: Mapped[str] = mapped_column(String(500))
    summary_html: Mapped[str] = mapped_column(Text, default="")
    summary_text: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    source: Mapped[str] = mapped_column(String(10), default="feed")  # feed, manual
    # False for the back catalogue found by the feed's first fetch: stored, but no digest sends it unasked.
    announce: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class Digest(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(200))
    intro: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(10), default=DigestStatus.SENDING.value)
    audience: Mapped[str] = mapped_column(String(10), default="every", server_default="every")  # every, monthly
    recipients: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # The ledger's final counts, kept once nothing is pending: history pages need not count a million rows.
    sent_count: Mapped[int | None] = mapped_column()
    failed_count: Mapped[int | None] = mapped_column()
    skipped_count: Mapped[int | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # Why the reputation guard paused it (posts/reputation); cleared on resume, from when the guard counts anew.
    paused_reason: Mapped[str | None] = mapped_column(String(500))
    guard_since: Mapped[datetime | None] = mapped_column(Timestamp)
    # When a scheduled digest falls due (UTC); beat starts it then, owing its mails to the readers of that moment.
    send_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # A resend (posts/resends): the digest it follows up, once each (unique), to whom the original did not
    # engage ("clicked": no human click; "opened": no human open nor click).
    follows_id: Mapped[int | None] = mapped_column(index=True, unique=True)
    resend_unless: Mapped[str | None] = mapped_column(String(10))
    # A subject test (posts/subject_tests): 2-4 subjects, each sent to an equal part of `test_share` of the
    # readers; at decide_at the winner's index is set, once, and the digest's subject becomes it for the rest.
    subjects: Mapped[list | None] = mapped_column(JSON(none_as_null=True))
    test_share: Mapped[float | None] = mapped_column()
    decide_after_hours: Mapped[float | None] = mapped_column()
    decide_at: Mapped[datetime | None] = mapped_column(Timestamp)
    winner: Mapped[int | None] = mapped_column()
    # "09:00": each reader's mail falls due at that time on their own clock (posts/local_time); NULL: all at once.
    local_time: Mapped[str | None] = mapped_column(String(5))
    # Who it is for beyond `audience` (posts/audiences): a segment's rules as they were when the digest was made,
    # NULL for everyone. No foreign key: the digest keeps its rules whatever becomes of the segment.
    segment_id: Mapped[int | None] = mapped_column()
    rules: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))

    posts: Mapped[list[Post]] = relationship(secondary=digest_post, order_by=digest_post.c.position)

    __table_args__ = (Index("ix_digest_scheduled", "send_at", postgresql_where=text("status = 'scheduled'"),
                            sqlite_where=text("status = 'scheduled'")),)

    @property
    def testing(self) -> bool:
        """A subject test whose winner is not chosen yet: the rest of its readers are still owed their mail."""
        return (self.decide_at is not None and self.winner is None
                and self.status in (DigestStatus.SENDING.value, DigestStatus.PAUSED.value))


class Segment(db.Model):
    """A saved choice of readers: what they took, where and when they signed up, how they read (posts/audiences)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    rules: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Click(db.Model):
    """One request to a tracked link in a digest: every request counts, unique clickers are counted when read."""

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column()
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    digest_id: Mapped[int] = mapped_column()
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # A person's click, or a link scanner's: only people's clicks make a reader engaged.
    human: Mapped[bool] = mapped_column(default=True, server_default=true())
    # The evidence for the verdict (posts/scanners; NULL for clicks recorded before it was kept).
    method: Mapped[str | None] = mapped_column(String(8))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    seconds_after_delivery: Mapped[int | None] = mapped_column()
    links_at_once: Mapped[int | None] = mapped_column()  # distinct links of the mail hit within a second of it
    machine_reason: Mapped[str | None] = mapped_column(String(10))  # a key of scanners.REASONS when not human

    __table_args__ = (Index("ix_click_digest_post", "digest_id", "post_id"),
                      # A new click's verdict reads the other clicks of its mail around the same time.
                      Index("ix_click_delivery_at", "delivery_id", "at"))


class Open(db.Model):
    """A load of a digest's tracking pixel: a hint, since privacy proxies fetch images nobody looked at."""

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column()
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    digest_id: Mapped[int] = mapped_column(index=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # A person's open, or an image proxy's (Apple Mail Privacy Protection, Gmail's proxy, a scanner).
    human: Mapped[bool] = mapped_column(default=True, server_default=true())
    method: Mapped[str | None] = mapped_column(String(8))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    seconds_after_delivery: Mapped[int | None] = mapped_column()
    machine_reason: Mapped[str | None] = mapped_column(String(10))


class WelcomeStep(db.Model):
    """One mail of the welcome sequence (`magnet_id` NULL) or of a magnet's follow-ups, `delay_hours` after the start.

    A reader's copy of a step is owed under welcome_key(reader, step id), so moving a step never sends it twice.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    magnet_id: Mapped[int | None] = mapped_column(ForeignKey("lead_magnet.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column()  # the order within its sequence
    delay_hours: Mapped[int] = mapped_column(default=0)
    # templates/email/<template>.subject.txt and .md: the built-in words; "" for a step written in the console.
    template: Mapped[str] = mapped_column(String(50), default="")
    # Set in the console, these replace the built-in subject and body (Markdown).
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(default=True)


WELCOME_KEY = "welcome:"


def welcome_key(subscriber_id: int, step_id: int) -> str:
    """The dedupe key of one reader's copy of one welcome step."""
    return f"{WELCOME_KEY}{subscriber_id}:step:{step_id}"


class ApiToken(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256: the token itself is never stored
    scopes: Mapped[str] = mapped_column(String(100))  # space-separated, as in OAuth: "read write send bounces"
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)  # kept, not deleted: the list shows who had access

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()


class NewsletterSettings(db.Model):
    """The author's studio: one row (id 1) set in the console; an empty column means the default from the
    environment (read through mailer/mail/identity.py, never directly)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter_name: Mapped[str | None] = mapped_column(String(100))
    sender_name: Mapped[str | None] = mapped_column(String(100))
    reply_to: Mapped[str | None] = mapped_column(String(254))
    blog_url: Mapped[str | None] = mapped_column(String(500))
    logo_url: Mapped[str | None] = mapped_column(String(500))
    # An uploaded logo lives here, so every web host serves it; the hash names it in its URL.
    logo_data: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    logo_type: Mapped[str | None] = mapped_column(String(40))
    logo_hash: Mapped[str | None] = mapped_column(String(64))
    accent_colour: Mapped[str | None] = mapped_column(String(7))
    postal_address: Mapped[str | None] = mapped_column(Text)
    welcome_text: Mapped[str | None] = mapped_column(Text)
    archive_enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class FeedState(db.Model):
    """What the blog's feed last told us, for conditional GETs."""

    url: Mapped[str] = mapped_column(String(2000), primary_key=True)
    etag: Mapped[str | None] = mapped_column(String(500))
    modified: Mapped[str | None] = mapped_column(String(100))
    fetched_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(String(500))


class AdminUser(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ConsoleSession(db.Model):
    """A console login that has not logged out: its cookie opens the console only while this row exists."""

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the key in the cookie
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin_user.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class LoginAttempt(db.Model):
    """Each console login attempt, for lockouts per account and per client (an IPv4 address, an IPv6 /64)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    ip: Mapped[str | None] = mapped_column(String(45), index=True)
    # What the lockout counts by: the IPv4 address, or the IPv6 /IPV6_PREFIX (people/networks.client_of).
    network: Mapped[str | None] = mapped_column(String(49), index=True)
    succeeded: Mapped[bool] = mapped_column(default=False)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)


class MailEvent(db.Model):
    """A bounce or complaint reported by the mail server or a provider's webhook, normalised."""

    id: Mapped[int] = mapped_column(primary_key=True)
    # provider + the provider's own id: a repeated notification is recognised and ignored.
    event_key: Mapped[str] = mapped_column(String(300), unique=True)
    provider: Mapped[str] = mapped_column(String(20))  # dsn, ses, postmark, sendgrid
    kind: Mapped[str] = mapped_column(String(20))  # hard_bounce, soft_bounce, complaint
    email: Mapped[str | None] = mapped_column(String(254))
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscriber.id", ondelete="SET NULL"), index=True)
    # Indexed: a digest's bounce and complaint rates count its deliveries' events.
    delivery_id: Mapped[int | None] = mapped_column(index=True)
    detail: Mapped[str] = mapped_column(String(1000), default="")
    received_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)


class SuppressionLift(db.Model):
    """An admin's word that a bounced address may be mailed again: who, when, and which event it overrode."""

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("admin_user.id", ondelete="SET NULL"))
    admin_email: Mapped[str] = mapped_column(String(254))  # kept when the admin account is deleted
    event_id: Mapped[int | None] = mapped_column(ForeignKey("mail_event.id", ondelete="SET NULL"))
    lifted_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class ErasedAddress(db.Model):
    """What is left of an erased subscriber: a keyed hash, so an import does not bring the address back by accident."""

    # HMAC under ERASURE_KEY of the address's SHA-256 (people/privacy.erasure_record), never the bare SHA-256.
    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
