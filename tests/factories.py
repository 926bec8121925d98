"""Rows for tests, made in bulk where a test needs many."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Delivery, Post, Subscriber


def subscribers(count: int, status: str = "confirmed", prefix: str = "reader", created_at: datetime | None = None
                ) -> list[str]:
    """Insert `count` subscribers with one status, signed up now or at `created_at`; returns their addresses."""
    now = created_at or datetime.now(timezone.utc)
    emails = [f"{prefix}{n}@example.com" for n in range(count)]
    db.session.execute(Subscriber.__table__.insert(), [
        {"email": e, "status": status, "created_at": now, "updated_at": now, "welcome_step": 3,
         "confirmed_at": now if status != "pending" else None} for e in emails])
    db.session.commit()
    return emails


def post(title: str = "Career Q&A: Can You Keep in Touch with an Employer You Turned Down?", n: int = 1) -> Post:
    published = datetime.now(timezone.utc) - timedelta(hours=n)
    row = Post(guid=f"https://blog.example.com/?p={n}", url=f"https://blog.example.com/post-{n}/", title=title,
               summary_html="<p>Your question is a bit tricky.</p>", summary_text="Your question is a bit tricky.",
               published_at=published)
    db.session.add(row)
    db.session.commit()
    return row


def subscriber(email: str) -> Subscriber | None:
    return db.session.scalar(select(Subscriber).where(Subscriber.email == email))


def deliveries(sub: Subscriber, kind: str | None = None) -> list[Delivery]:
    query = select(Delivery).where(Delivery.subscriber_id == sub.id).order_by(Delivery.id)
    if kind:
        query = query.where(Delivery.kind == kind)
    return list(db.session.scalars(query))
