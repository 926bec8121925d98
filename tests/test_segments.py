"""Segments: the rules choose readers on both databases, and a post counts as sent to the readers who received it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from mailer.extensions import db
from mailer.models import Click, Consent, Delivery, LeadMagnet, Open, Post, Subscriber
from mailer.outbox import digest_mail
from mailer.posts import digests
from mailer.posts.audiences import RuleError, checked
from mailer.posts.digest_schedule import schedule_digest
from mailer.posts.segments import EVERYONE, create_segment, recipients_of, segment_count
from tests import factories

NOW = datetime.now(timezone.utc)
PAGE = "https://blog.example.com/career-qa/keep-in-touch/"


def reader(email: str, *, magnet: str | None = "handbook", form: str = "iframe", page: str | None = PAGE,
           created: datetime = NOW - timedelta(days=10), confirmed_consent: bool = True, imported: bool = False,
           frequency: str = "every", status: str = "confirmed") -> Subscriber:
    """A subscriber with one consent (for `magnet`, from `form` on `page`)."""
    sub = Subscriber(email=email, status=status, created_at=created, confirmed_at=created + timedelta(hours=1),
                     imported=imported, digest_frequency=frequency, welcome_step=3)
    db.session.add(sub)
    db.session.flush()
    magnet_id = db.session.scalar(select(LeadMagnet.id).where(LeadMagnet.slug == magnet)) if magnet else None
    db.session.add(Consent(subscriber_id=sub.id, magnet_id=magnet_id, form=form, source_url=page,
                           consent_text="Yes", requested_at=created,
                           confirmed_at=created + timedelta(hours=1) if confirmed_consent else None))
    db.session.commit()
    return sub


def emails(rules: dict) -> set[str]:
    found = db.session.scalars(select(Subscriber.email).where(*digests.readers(rules=rules)))
    return set(found)


@pytest.fixture
def course(either_app):
    db.session.add(LeadMagnet(slug="course", title="A five-part course", file="x.pdf", filename="x.pdf"))
    db.session.commit()


def test_each_rule_chooses_its_readers(either_app, course):
    ann = reader("ann@example.com", created=NOW - timedelta(days=40))
    bob = reader("bob@example.com", magnet="course", form="snippet", page="https://blog.example.com/other/")
    reader("cy@example.com", magnet="course", form="import", page=None, imported=True, frequency="monthly")
    # Asked for the course while confirmed: no second confirmation, so the consent stays unconfirmed, yet taken.
    db.session.add(Consent(subscriber_id=ann.id, magnet_id=db.session.scalar(
        select(LeadMagnet.id).where(LeadMagnet.slug == "course")), form="script", consent_text="Yes",
        requested_at=NOW - timedelta(days=2)))
    # Pending when asked, never confirmed: not taken.
    reader("dee@example.com", magnet="course", confirmed_consent=False, created=NOW - timedelta(days=5))
    db.session.execute(update(Subscriber).where(Subscriber.email == "dee@example.com")
                       .values(confirmed_at=NOW - timedelta(days=1)))
    reader("gone@example.com", status="unsubscribed")
    db.session.add_all([Click(delivery_id=1, subscriber_id=ann.id, digest_id=1, post_id=_post().id,
                              at=NOW - timedelta(days=3)),
                        Open(delivery_id=2, subscriber_id=bob.id, digest_id=1, at=NOW - timedelta(days=3),
                             human=False)])
    db.session.commit()

    assert emails({"magnets": ["handbook"]}) == {"ann@example.com"}
    assert emails({"magnets": ["course"]}) == {"ann@example.com", "bob@example.com"}
    assert emails({"forms": ["embed"]}) == {"ann@example.com", "bob@example.com", "dee@example.com"}
    assert emails({"forms": ["import"], "imported": True}) == set()  # a monthly reader: not in every's digest
    assert segment_count(db.session, {"forms": ["import"], "imported": True}) == 1
    assert emails({"pages": [PAGE]}) == {"ann@example.com", "dee@example.com"}
    assert emails({"signed_up": {"from": (NOW - timedelta(days=20)).date().isoformat()}}) == {
        "bob@example.com", "dee@example.com"}
    assert emails({"signed_up": {"to": (NOW - timedelta(days=40)).date().isoformat()}}) == {"ann@example.com"}
    assert emails({"confirmed": {"from": (NOW - timedelta(days=2)).isoformat()}}) == {"dee@example.com"}
    # Bob's only open was an image proxy's: engaged means a person's click or open.
    assert emails({"engaged_within_days": 7}) == {"ann@example.com"}
    assert emails({"engaged_within_days": 2}) == set()
    assert emails({"engaged_within_days": 7, "engaged": False}) == {"bob@example.com", "dee@example.com"}
    assert emails({"preference": "monthly"}) == set()
    assert segment_count(db.session, {"preference": "monthly"}) == 1
    assert emails({"magnets": ["course"], "forms": ["snippet"], "imported": False}) == {"bob@example.com"}


@pytest.mark.parametrize("rules, field", [
    ([], "rules"), ({"colour": "red"}, "rules.colour"), ({"magnets": "handbook"}, "rules.magnets"),
    ({"magnets": ["nope"]}, "rules.magnets"), ({"forms": ["fax"]}, "rules.forms"),
    ({"signed_up": {"from": "yesterday"}}, "rules.signed_up"),
    ({"confirmed": {"since": "2026-01-01"}}, "rules.confirmed"),
    ({"signed_up": {"from": "2026-01-01T09:00"}}, "rules.signed_up"), ({"imported": "yes"}, "rules.imported"),
    ({"engaged_within_days": 0}, "rules.engaged_within_days"),
    ({"engaged_within_days": True}, "rules.engaged_within_days"),
    ({"preference": "weekly"}, "rules.preference"), ({"pages": [""]}, "rules.pages"),
])
def test_rules_that_cannot_be_read_name_the_rule(app, rules, field):
    with pytest.raises(RuleError) as caught:
        checked(db.session, rules)
    assert caught.value.field == field


def _post(n: int = 1) -> Post:
    return factories.post(f"Post {n}", n=10 - n)


def _rows(digest_id: int) -> dict[str, list[int] | None]:
    """Each reader's row of the digest, with the posts it carries when they differ from the digest's."""
    found = db.session.execute(select(Subscriber.email, Delivery.payload).join(Subscriber).where(
        Delivery.digest_id == digest_id))
    return {email: (payload or {}).get("post_ids") for email, payload in found}


def test_a_digest_to_a_segment_leaves_its_posts_new_for_everyone_else(either_app, course):
    reader("ann@example.com")
    reader("bob@example.com", magnet="course")
    reader("cy@example.com", magnet="course")
    first = _post(1)
    to_course = recipients_of(db.session, magnet="course")
    segment_digest = digests.create_digest(db.session, to=to_course)
    db.session.commit()
    assert _rows(segment_digest.id) == {"bob@example.com": None, "cy@example.com": None}
    assert segment_digest.rules == {"magnets": ["course"]} and segment_digest.recipients == 2

    # The course readers had the post: nothing is new to them; everyone else still has it to come.
    with pytest.raises(digests.NothingNew):
        digests.choose_posts(db.session, rules=to_course.rules)
    assert [p.id for p in digests.unsent_posts(db.session)] == [first.id]

    second = _post(2)
    to_all = digests.create_digest(db.session)
    db.session.commit()
    assert _rows(to_all.id) == {"ann@example.com": None, "bob@example.com": [second.id],
                                "cy@example.com": [second.id]}
    # A digest to everyone uses its posts up; a reader who has had every post of the next gets no row.
    assert digests.unsent_posts(db.session) == []
    third = _post(3)
    digests.create_digest(db.session, to=to_course)
    again = digests.create_digest(db.session)
    db.session.commit()
    assert _rows(again.id) == {"ann@example.com": None} and again.posts == [third]


def test_a_reader_with_nothing_left_gets_no_row_and_skipped_rows_give_nothing(either_app, course):
    reader("ann@example.com")
    bob = reader("bob@example.com", magnet="course")
    first = _post(1)
    course_digest = digests.create_digest(db.session, to=recipients_of(db.session, magnet="course"))
    db.session.commit()
    # Bob's mail of the course digest was skipped (he had paused, say): he never had the post.
    db.session.execute(update(Delivery).where(Delivery.subscriber_id == bob.id, Delivery.digest_id == course_digest.id)
                       .values(status="skipped"))
    db.session.commit()
    to_all = digests.create_digest(db.session, post_ids=[first.id])
    db.session.commit()
    assert _rows(to_all.id) == {"ann@example.com": None, "bob@example.com": None}

    # A digest to a segment, scheduled; the same post goes to everyone before it falls due: its readers had it.
    second = _post(2)
    later = schedule_digest(db.session, NOW + timedelta(hours=1), post_ids=[second.id],
                            to=recipients_of(db.session, magnet="handbook"))
    digests.create_digest(db.session, post_ids=[second.id])
    assert digests.start_digest(db.session, later)
    db.session.commit()
    assert later.recipients == 0 and _rows(later.id) == {}


def test_each_reader_gets_the_frame_of_their_own_posts_rendered_once_per_set(either_app, course):
    for n in range(3):
        reader(f"ann{n}@example.com")
        reader(f"bob{n}@example.com", magnet="course")
    first = _post(1)
    digests.create_digest(db.session, to=recipients_of(db.session, magnet="course"))
    second = _post(2)
    to_all = digests.create_digest(db.session)
    db.session.commit()
    rows = list(db.session.scalars(select(Delivery).where(Delivery.digest_id == to_all.id)))
    digest_mail._cached_frame.cache_clear()
    frames = {}
    for row in rows:
        frame = digest_mail.digest_frame(row.digest_id, row.created_at, post_ids=(row.payload or {}).get("post_ids"))
        frames[row.subscriber_id] = [post_id for post_id, _ in frame.posts]
    assert digest_mail._cached_frame.cache_info().misses == 2  # two sets of posts, six readers
    by_email = {db.session.get(Subscriber, sid).email: posts for sid, posts in frames.items()}
    assert by_email["ann0@example.com"] == [first.id, second.id] and by_email["bob0@example.com"] == [second.id]


def test_a_segment_is_saved_with_checked_rules_and_counts_confirmed_readers(either_app, course):
    reader("ann@example.com")
    reader("bob@example.com", magnet="course", frequency="monthly")
    segment = create_segment(db.session, " Course takers ", {"magnets": ["course"], "forms": ["embed"]})
    db.session.commit()
    assert segment.name == "Course takers" and segment_count(db.session, segment.rules) == 1
    with pytest.raises(RuleError) as caught:
        create_segment(db.session, "Course takers", {})
    assert caught.value.field == "name"
    assert recipients_of(db.session) == EVERYONE
    assert recipients_of(db.session, segment=segment.id).rules == segment.rules
    with pytest.raises(RuleError):
        recipients_of(db.session, segment=segment.id + 1)


def test_a_post_is_used_up_for_the_readers_it_went_to_and_for_those_who_all_had_it(either_app, course):
    reader("bob@example.com", magnet="course")
    post = _post(1)
    to_course = recipients_of(db.session, magnet="course")
    digests.create_digest(db.session, to=to_course)
    db.session.commit()
    # Like a digest to everyone: a reader who joins the segment later does not get its back catalogue.
    reader("cy@example.com", magnet="course")
    with pytest.raises(digests.NothingNew):
        digests.choose_posts(db.session, rules=to_course.rules)
    # Other rules whose readers all had the post: nothing new to them either; once one has not, it is.
    narrower = {"magnets": ["course"], "pages": [PAGE], "signed_up": {"to": NOW.date().isoformat()}}
    db.session.execute(update(Subscriber).where(Subscriber.email == "cy@example.com").values(status="pending"))
    db.session.commit()
    with pytest.raises(digests.NothingNew):
        digests.choose_posts(db.session, rules=narrower)
    db.session.execute(update(Subscriber).where(Subscriber.email == "cy@example.com").values(status="confirmed"))
    db.session.commit()
    assert digests.choose_posts(db.session, rules=narrower) == [post]


def test_a_subject_test_after_a_segment_digest_gives_each_reader_their_variant_and_their_own_posts(either_app, course):
    for n in range(4):
        reader(f"ann{n}@example.com")
        reader(f"bob{n}@example.com", magnet="course")
    first = _post(1)
    digests.create_digest(db.session, to=recipients_of(db.session, magnet="course"))
    second = _post(2)
    tested = digests.create_digest(db.session, subjects=["Left", "Right"], test_share=1.0, decide_after_hours=4)
    db.session.commit()

    rows = list(db.session.scalars(select(Delivery).where(Delivery.digest_id == tested.id)))
    assert len(rows) == 8 and {row.payload["variant"] for row in rows} == {0, 1}
    for row in rows:
        email = db.session.get(Subscriber, row.subscriber_id).email
        frame = digest_mail.digest_frame(row.digest_id, row.created_at, row.payload["variant"], row.payload.get("post_ids"))
        assert [post_id for post_id, _ in frame.posts] == ([second.id] if email.startswith("bob") else [first.id, second.id])
        assert frame.mail.parts.subject == ["Left", "Right"][row.payload["variant"]]
