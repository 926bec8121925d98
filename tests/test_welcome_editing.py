"""The sequences as the author edits them: steps moved, added and deleted mid-sequence, magnets' follow-ups."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from mailer.extensions import db
from mailer.models import Delivery, LeadMagnet, Subscriber, WelcomeStep, aware, utcnow
from mailer.outbox import sender
from mailer.people import subscriptions, welcome_steps
from mailer.people.subscriptions import SignupRequest
from mailer.people.welcome import advance_welcome_sequences


def confirmed(email: str, magnet: str | None = None) -> Subscriber:
    subscriptions.sign_up(db.session, SignupRequest(email=email, magnet=magnet))
    consent_id = max(d.payload["consent_id"] for d in db.session.scalars(select(Delivery).where(
        Delivery.kind == "confirmation")))
    consent = subscriptions.confirm_subscription(db.session, consent_id)
    db.session.commit()
    return db.session.get(Subscriber, consent.subscriber_id)


def step(position: int, magnet_id: int | None = None) -> WelcomeStep:
    return welcome_steps.sequence_of(db.session, WelcomeStep(magnet_id=magnet_id))[position - 1]


def written_step(subject: str, magnet_id: int | None = None, delay_hours: int = 0) -> WelcomeStep:
    new = welcome_steps.add_step(db.session, magnet_id)
    welcome_steps.save_step(db.session, new, delay_hours=delay_hours, subject=subject, body=f"All about {subject}.",
                            enabled=True)
    return new


def run_beat_and_worker(at) -> None:
    """What beat and a worker do: owe the steps that fell due, then send what is owed (the real sender)."""
    for _ in range(8):
        advance_welcome_sequences(db.session, now=at)
        db.session.commit()
    sender.deliver_due(100)


def sent_subjects(subscriber_id: int) -> list[str]:
    """The subject of each welcome mail sent to a reader, in the order sent (from what the sender wrote)."""
    rows = db.session.scalars(select(Delivery).where(
        Delivery.subscriber_id == subscriber_id, Delivery.kind == "welcome", Delivery.status == "sent")
        .order_by(Delivery.sent_at, Delivery.id))
    steps = {s.id: s for s in db.session.scalars(select(WelcomeStep))}
    from mailer.outbox.compose import welcome_words
    return [welcome_words(steps.get(d.payload["step_id"]), d.payload.get("template", ""))[0] for d in rows]


def test_a_reader_past_two_steps_gets_each_remaining_step_once_whatever_the_author_does(either_app):
    reader = confirmed("ann@example.com")
    start = aware(reader.confirmed_at)
    run_beat_and_worker(start + timedelta(hours=49))
    assert sent_subjects(reader.id) == ["Welcome to Career Q&A",
                                        "Three questions to ask before you manage across generations"]
    # The author moves the last step to the top, inserts a new one second, and deletes the old second step.
    third = step(3)
    welcome_steps.move_step(db.session, third, -1)
    welcome_steps.move_step(db.session, third, -1)
    inserted = written_step("Your first week", delay_hours=72)
    for _ in range(2):
        welcome_steps.move_step(db.session, inserted, -1)
    welcome_steps.delete_step(db.session, step(4))
    db.session.commit()
    assert [s.id for s in welcome_steps.sequence_of(db.session, third)] == [third.id, inserted.id, 1]

    run_beat_and_worker(start + timedelta(days=30))
    run_beat_and_worker(start + timedelta(days=31))
    assert sent_subjects(reader.id) == ["Welcome to Career Q&A",
                                        "Three questions to ask before you manage across generations",
                                        "What comes next from Career Q&A", "Your first week"]
    assert db.session.get(Subscriber, reader.id).welcome_next_at is None


def test_a_step_moved_earlier_is_sent_at_its_own_time_not_held_back(either_app):
    reader = confirmed("bo@example.com")
    start = aware(reader.confirmed_at)
    # Bo is waiting for step 2 (day 2); the author moves step 3 (day 7) before it and makes it day 1.
    third = step(3)
    welcome_steps.move_step(db.session, third, -1)
    welcome_steps.save_step(db.session, third, delay_hours=24, subject=None, body=None, enabled=True)
    db.session.commit()
    run_beat_and_worker(start + timedelta(hours=25))
    assert sent_subjects(reader.id) == ["Welcome to Career Q&A", "What comes next from Career Q&A"]


def test_a_second_magnet_brings_its_own_follow_ups_without_a_second_confirmation(either_app):
    course = LeadMagnet(slug="course", title="A five-part course", file="x.pdf", filename="x.pdf")
    db.session.add(course)
    db.session.commit()
    parts = [written_step(f"Course part {n}", course.id, delay_hours=24 * (n - 1)) for n in (1, 2)]
    db.session.commit()
    reader = confirmed("cy@example.com")  # the handbook first: no course steps
    start = aware(reader.confirmed_at)
    run_beat_and_worker(start + timedelta(days=8))
    assert sent_subjects(reader.id)[-1] == "What comes next from Career Q&A"
    assert "Course part 1" not in sent_subjects(reader.id)

    # A day later (the per-address throttle of download links counts a day):
    db.session.execute(update(Delivery).where(Delivery.subscriber_id == reader.id).values(
        created_at=utcnow() - timedelta(days=1)))
    db.session.commit()
    confirmations = db.session.scalar(select(Delivery.id).where(Delivery.kind == "confirmation").order_by(
        Delivery.id.desc()).limit(1))
    for _ in range(2):  # takes the course, and asks for it again
        subscriptions.sign_up(db.session, SignupRequest(email="cy@example.com", magnet="course"))
    assert db.session.scalar(select(Delivery.id).where(Delivery.kind == "confirmation").order_by(
        Delivery.id.desc()).limit(1)) == confirmations  # not asked to confirm again
    taken = utcnow()
    run_beat_and_worker(taken + timedelta(hours=1))
    assert sent_subjects(reader.id)[3:] == ["Course part 1"]
    run_beat_and_worker(taken + timedelta(days=2))
    run_beat_and_worker(taken + timedelta(days=60))
    assert sent_subjects(reader.id)[3:] == ["Course part 1", "Course part 2"]
    links = [d.payload["magnet_id"] for d in db.session.scalars(select(Delivery).where(
        Delivery.subscriber_id == reader.id, Delivery.kind == "magnet"))]
    assert links.count(course.id) == 1 and parts[0].id != parts[1].id  # its download link, once (throttled after)


def test_a_reader_who_signs_up_for_a_magnet_gets_its_steps_after_the_welcome(either_app):
    course = LeadMagnet(slug="course", title="A five-part course", file="x.pdf", filename="x.pdf")
    db.session.add(course)
    db.session.commit()
    written_step("Course part 1", course.id)
    db.session.commit()
    reader = confirmed("di@example.com", magnet="course")
    run_beat_and_worker(aware(reader.confirmed_at) + timedelta(days=8))
    assert sent_subjects(reader.id) == ["Welcome to Career Q&A",
                                        "Three questions to ask before you manage across generations",
                                        "What comes next from Career Q&A", "Course part 1"]
    other = confirmed("eve@example.com")  # the handbook: no course
    run_beat_and_worker(aware(other.confirmed_at) + timedelta(days=8))
    assert "Course part 1" not in sent_subjects(other.id)


def test_a_deleted_steps_queued_copies_are_not_sent(app):
    reader = confirmed("fay@example.com")
    first = step(1)
    assert db.session.scalar(select(Delivery.status).where(Delivery.subscriber_id == reader.id,
                                                           Delivery.kind == "welcome")) == "queued"
    welcome_steps.delete_step(db.session, first)
    db.session.commit()
    sender.deliver_due(100)
    assert db.session.scalar(select(Delivery.status).where(Delivery.subscriber_id == reader.id,
                                                           Delivery.kind == "welcome")) == "skipped"


def test_a_new_step_stays_off_until_it_has_words(app):
    new = welcome_steps.add_step(db.session)
    assert not new.enabled and new.position == 4 and new.delay_hours == 168 + 48
    try:
        welcome_steps.save_step(db.session, new, delay_hours=0, subject="Hello", body=None, enabled=True)
    except welcome_steps.StepNotReady as exc:
        assert "Write a subject and a body" in str(exc)
    else:
        raise AssertionError("a step without a body was switched on")
    welcome_steps.switch_all(db.session, True)
    assert not db.session.get(WelcomeStep, new.id).enabled
