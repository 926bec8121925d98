"""The stored world: subscribers, their consent, lead magnets and the outbox of deliveries."""
from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, WriteOnlyMapped, mapped_column, relationship

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


Timestamp = DateTime(timezone=True)


class Subscriber(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased, so the unique index is case-insensitive on every database.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING.value, index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(Timestamp)

    consents: WriteOnlyMapped[Consent] = relationship(back_populates="subscriber", passive_deletes=True)
    deliveries: WriteOnlyMapped[Delivery] = relationship(back_populates="subscriber", passive_deletes=True)

    @property
    def may_receive_list_mail(self) -> bool:
        return self.status == Status.CONFIRMED.value


class Consent(db.Model):
    """What a person agreed to, when, and where: one row per signup request."""

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    magnet_id: Mapped[int | None] = mapped_column(ForeignKey("lead_magnet.id", ondelete="SET NULL"))
    source_url: Mapped[str | None] = mapped_column(String(2000))
    form: Mapped[str] = mapped_column(String(20))  # snippet, iframe, script, api, import
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
    # Absolute path, or relative to mailer/magnets/ for the files shipped with the package.
    file: Mapped[str] = mapped_column(String(500))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100), default="application/pdf")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Download(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
    magnet_id: Mapped[int] = mapped_column(ForeignKey("lead_magnet.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Delivery(db.Model):
    """One email the system owes: written before any task is queued, sent at most once."""

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # confirmation, magnet, welcome
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"), index=True)
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

    subscriber: Mapped[Subscriber] = relationship(back_populates="deliveries")

    __table_args__ = (
        # The claim query reads only due rows: keep that index small and hot.
        Index("ix_delivery_due", "status", "next_attempt_at"),
    )
