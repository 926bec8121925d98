"""Thin tasks: they carry nothing but limits and call the outbox."""
from celery import shared_task

from mailer import outbox


@shared_task(ignore_result=True)
def deliver_due(limit: int = 50) -> None:
    """Send one batch of due outbox rows; a full batch asks for another, so idle workers join in."""
    if outbox.deliver_due(limit) == limit:
        deliver_due.delay(limit)
