"""Subject tests: each subject to an equal part of the test share, the winner to the rest, once, by beat."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from mailer.api_tokens import create_token
from mailer.extensions import db
from mailer.models import Click, Delivery, Digest, Subscriber
from mailer.outbox import sender
from mailer.posts import archive, digest_results, digests, subject_tests
from mailer.posts.subject_tests import decide_due_tests, read_test, share_size, winner_of
from tests import factories

SUBJECTS = ["Keep in touch?", "Should you stay in touch with a company you turned down?", "A tricky question"]


def later(hours: float = 4.01) -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=hours)


def digest_on_trial(readers: int = 100, **options) -> Digest:
    factories.subscribers(readers)
    factories.post(n=1)
    digest = digests.create_digest(db.session, SUBJECTS[0], **read_test(SUBJECTS, **options))
    db.session.commit()
    return digest


def variants_owed(digest_id: int) -> Counter:
    db.session.rollback()
    payloads = db.session.scalars(select(Delivery.payload).where(Delivery.digest_id == digest_id))
    return Counter(p.get("variant") for p in payloads)


def human_clicks(digest: Digest, variant: int, count: int, human: bool = True) -> None:
    """`count` readers of `variant` click (as people, or as a link scanner)."""
    rows = [r for r in db.session.execute(select(Delivery.id, Delivery.subscriber_id, Delivery.payload)
                                          .where(Delivery.digest_id == digest.id).order_by(Delivery.id))
            if r.payload.get("variant") == variant][:count]
    db.session.execute(Click.__table__.insert(), [
        {"delivery_id": d, "subscriber_id": s, "digest_id": digest.id, "post_id": digest.posts[0].id, "human": human}
        for d, s, _ in rows])
    db.session.commit()


@pytest.mark.parametrize(("values", "field"), [
    ({"subjects": ["Only one"]}, "subjects"), ({"subjects": ["A", "B", "C", "D", "E"]}, "subjects"),
    ({"subjects": ["Same", "same"]}, "subjects"), ({"subjects": ["A", ""]}, "subjects"),
    ({"subjects": "A, B"}, "subjects"), ({"subjects": ["A", 2]}, "subjects"),
    ({"subjects": ["A", "B\nBcc: x@example.com"]}, "subject"),
    ({"subjects": ["A", "B"], "test_share": 0}, "test_share"), ({"subjects": ["A", "B"], "test_share": 1}, "test_share"),
    ({"subjects": ["A", "B"], "test_share": "half"}, "test_share"), ({"subjects": ["A", "B"], "test_share": True}, "test_share"),
    ({"subjects": ["A", "B"], "decide_after_hours": -1}, "decide_after_hours"),
    ({"subjects": ["A", "B"], "decide_after_hours": 10_000}, "decide_after_hours"),
    ({"subjects": None, "test_share": 0.5}, "subjects"),
])
def test_a_subject_test_is_checked_field_by_field(app, values, field):
    with pytest.raises(digests.DigestError) as caught:
        read_test(values.get("subjects"), values.get("test_share"), values.get("decide_after_hours"))
    assert caught.value.field == field


def test_the_defaults_and_the_sizes_of_the_parts():
    assert read_test(["A", "B"]) == {"subjects": ["A", "B"], "test_share": 0.2, "decide_after_hours": 4.0}
    assert read_test(None) == {}
    assert share_size(100, 0.2, 2) == 10 and share_size(1000, 0.3, 3) == 100
    assert share_size(5, 0.2, 2) == 1  # at least one reader per subject
    assert share_size(3, 0.9, 2) == 1  # never more than there are readers for each
    assert share_size(1, 0.5, 2) == 0  # fewer readers than subjects: no test
    assert winner_of([3, 5, 5]) == 1 and winner_of([0, 0]) == 0 and winner_of([2, 1, 2]) == 0


def test_the_test_share_is_split_equally_and_the_winner_goes_to_the_rest_once(either_app):
    digest = digest_on_trial(100, test_share=0.3)
    assert variants_owed(digest.id) == {0: 10, 1: 10, 2: 10} and digest.recipients == 30
    assert digest.testing and decide_due_tests(db.session) == []  # not due yet

    human_clicks(digest, 0, 1)
    human_clicks(digest, 0, 4, human=False)  # a link scanner clicks a lot: not counted
    human_clicks(digest, 1, 2)
    factories.subscribers(5, prefix="newcomer")  # joined during the test: they get the winner
    test_reader = db.session.scalar(select(Delivery.subscriber_id).where(Delivery.digest_id == digest.id).limit(1))
    db.session.execute(update(Subscriber).where(Subscriber.id == test_reader).values(status="unsubscribed"))
    db.session.commit()

    decided = decide_due_tests(db.session, now=later())
    db.session.commit()
    assert [d.id for d in decided] == [digest.id]
    digest = db.session.get(Digest, digest.id)
    assert (digest.winner, digest.subject, digest.testing) == (1, SUBJECTS[1], False)
    assert variants_owed(digest.id) == {0: 10, 1: 10, 2: 10, None: 75} and digest.recipients == 105
    per_reader = db.session.execute(select(Delivery.subscriber_id, func.count()).where(Delivery.digest_id == digest.id)
                                    .group_by(Delivery.subscriber_id)).all()
    assert len(per_reader) == 105 and {n for _, n in per_reader} == {1}  # every reader once
    assert decide_due_tests(db.session, now=later(8)) == []  # a second beat: nothing more
    db.session.commit()
    assert variants_owed(digest.id)[None] == 75


def test_the_variants_figures_on_both_databases(either_app):
    digest = digest_on_trial(40, test_share=0.5)
    human_clicks(digest, 1, 3)
    human_clicks(digest, 0, 2, human=False)
    second = [d for d, p in db.session.execute(select(Delivery.id, Delivery.payload)
                                               .where(Delivery.digest_id == digest.id)) if p["variant"] == 2]
    db.session.execute(update(Delivery).where(Delivery.id.in_(second[:4])).values(status="sent"))
    db.session.commit()
    figures = subject_tests.variants(db.session, digest)
    assert figures["state"] == "testing" and figures["winner"] is None
    assert [v["recipients"] for v in figures["variants"]] == [7, 7, 7]  # round(40 × 0.5 / 3) each
    assert [v["sent"] for v in figures["variants"]] == [0, 0, 4]
    assert [v["human_clickers"] for v in figures["variants"]] == [0, 3, 0]
    assert subject_tests.human_clickers(db.session, digest) == [0, 3, 0]


def test_each_reader_gets_the_subject_of_their_part(app):
    digest = digest_on_trial(20, test_share=0.5, decide_after_hours=0)
    sent_to = {}
    assert sender.deliver_due() == 9  # 3 readers for each subject
    decide_due_tests(db.session)
    db.session.commit()
    assert sender.deliver_due() == 11
    import email
    from email import policy
    from pathlib import Path

    for path in Path(app.config["OUTBOX_DIR"]).glob("*.eml"):
        mail = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        sent_to[mail["To"]] = mail["Subject"]
    assert len(sent_to) == 20
    # No clicks: the first subject wins and goes to the rest.
    assert Counter(sent_to.values()) == {SUBJECTS[0]: 3 + 11, SUBJECTS[1]: 3, SUBJECTS[2]: 3}
    by_variant = {p.get("variant") for p in db.session.scalars(select(Delivery.payload))}
    assert by_variant == {0, 1, 2, None}


def test_a_test_is_not_finished_while_its_winner_waits_and_can_be_cancelled(app):
    digest = digest_on_trial(10)
    db.session.execute(update(Delivery).where(Delivery.digest_id == digest.id).values(status="sent"))
    db.session.commit()
    [result] = digest_results.results(db.session, [digest])
    assert result.status == "sending" and result.finished_at is None and digest.finished_at is None
    digests.pause(db.session, digest)
    db.session.commit()
    assert decide_due_tests(db.session, now=later()) == []  # paused: the winner waits for the resume
    digests.resume(db.session, digest)
    digests.cancel(db.session, digest)
    db.session.commit()
    assert decide_due_tests(db.session, now=later()) == [] and variants_owed(digest.id)[None] == 0
    assert digest_results.results(db.session, [digest])[0].status == "cancelled"


def test_a_decision_that_fails_half_way_is_made_again_by_the_next_beat(app, monkeypatch):
    digest = digest_on_trial(30)
    real = subject_tests.owe_digest

    def crash(*args, **kwargs):
        raise RuntimeError("the worker died while owing the rest")

    monkeypatch.setattr(subject_tests, "owe_digest", crash)
    with pytest.raises(RuntimeError):
        decide_due_tests(db.session, now=later())
    db.session.rollback()
    assert db.session.get(Digest, digest.id).winner is None and variants_owed(digest.id)[None] == 0
    monkeypatch.setattr(subject_tests, "owe_digest", real)
    assert len(decide_due_tests(db.session, now=later())) == 1
    db.session.commit()
    assert variants_owed(digest.id)[None] == 24


def test_two_beats_racing_decide_once(private_pg_app):
    digest = digest_on_trial(200)
    barrier, decided = threading.Barrier(2), []

    def beat() -> None:
        with private_pg_app.app_context(), Session(db.engine) as session:
            barrier.wait()
            decided.extend(d.id for d in decide_due_tests(session, now=later()))
            session.commit()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert decided == [digest.id]
    assert variants_owed(digest.id) == {0: 13, 1: 13, 2: 13, None: 161}


def test_the_api_tests_subjects_and_shows_the_winner_in_the_archive(either_app):
    factories.subscribers(20)
    factories.post(n=1)
    token = create_token(db.session, "tests")
    db.session.commit()
    client, auth = either_app.test_client(), {"Authorization": f"Bearer {token}"}
    bad = client.post("/api/v1/digests", json={"subject": "A", "subjects": ["B", "C"]}, headers=auth)
    assert bad.status_code == 422 and bad.json["field"] == "subjects"
    assert client.post("/api/v1/digests", json={"subjects": ["B"]}, headers=auth).json["field"] == "subjects"
    made = client.post("/api/v1/digests", json={"subjects": SUBJECTS[:2], "test_share": 0.5,
                                                "decide_after_hours": 1}, headers=auth)
    assert made.status_code == 202, made.json
    state = client.get(f"/api/v1/digests/{made.json['id']}", headers=auth).json
    assert state["subject_test"]["state"] == "testing" and state["recipients"] == 10
    assert [v["recipients"] for v in state["subject_test"]["variants"]] == [5, 5]
    digest = db.session.get(Digest, made.json["id"])
    human_clicks(digest, 1, 1)
    decide_due_tests(db.session, now=later(1.01))
    db.session.commit()
    state = client.get(f"/api/v1/digests/{digest.id}", headers=auth).json
    assert state["subject_test"]["winner"] == 1 and state["subject_test"]["winning_subject"] == SUBJECTS[1]
    assert state["subject"] == SUBJECTS[1] and state["recipients"] == 20
    assert [d.subject for d in archive.page(db.session)[0]] == [SUBJECTS[1]]
    assert SUBJECTS[1].encode() in client.get("/archive").data


def test_the_console_composes_a_subject_test_and_draws_its_variants(admin):
    from tests.conftest import csrf_from

    factories.subscribers(20)
    post = factories.post(n=1)
    preview = admin.get("/admin/digests/preview", query_string={
        "post_ids": post.id, "subject": SUBJECTS[0], "other_subjects": [SUBJECTS[1], ""], "test_percent": "50"})
    assert preview.status_code == 200 and b'id="subject-test"' in preview.data
    page = preview.get_data(as_text=True)
    assert 'name="other_subjects" value="Should you stay' in page and 'name="test_percent" value="50"' in page
    sent = admin.post("/admin/digests", data={"csrf_token": csrf_from(page), "post_ids": post.id,
                                              "subject": SUBJECTS[0], "other_subjects": [SUBJECTS[1]],
                                              "test_percent": "50", "decide_after_hours": "2"})
    digest = db.session.scalar(select(Digest))
    assert sent.headers["Location"].endswith(f"/admin/digests/{digest.id}")
    assert digest.subjects == SUBJECTS[:2] and digest.test_share == 0.5 and digest.recipients == 10
    human_clicks(digest, 1, 2)
    shown = admin.get(f"/admin/digests/{digest.id}").get_data(as_text=True)
    assert 'class="hbars variants"' in shown and "Testing 2 subjects" in shown
    assert "A resend can follow once the subject test" in shown
    newer = factories.post("A newer answer", n=2)
    refused = admin.post("/admin/digests", data={"csrf_token": csrf_from(page), "post_ids": newer.id,
                                                 "subject": "Other", "other_subjects": ["Other"]},
                         follow_redirects=True)
    assert "different subjects" in refused.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Digest)) == 1


def test_beat_decides_subject_tests(app):
    from mailer.tasks import beat_schedule

    entry = beat_schedule(app.config)["subject-tests-due"]
    assert entry["task"] == "worker.tasks.decide_subject_tests"
    assert entry["schedule"] == timedelta(seconds=app.config["SWEEP_SECONDS"])


@pytest.mark.integration
def test_beat_decides_and_the_worker_sends_every_reader_one_copy(pg_app, worker, smtp, api):
    from tests.test_digests import copies, wait_for_digest

    readers = factories.subscribers(30)
    factories.post(n=1)
    made = api.post("/digests", {"subjects": ["Alpha subject", "Beta subject"], "test_share": 0.4,
                                 "decide_after_hours": 0})
    assert made.status_code == 202, made.json
    state = wait_for_digest(api, made.json["id"], done=lambda s: s["subject_test"]["state"] == "decided"
                            and s["pending"] == 0 and s["recipients"] == 30)
    assert state["status"] == "sent" and state["sent"] == 30
    alpha, beta = copies(smtp, "Alpha subject"), copies(smtp, "Beta subject")
    assert sum(beta.values()) == 6 and sum(alpha.values()) == 24  # no clicks: the first goes to the rest
    assert Counter(alpha) + Counter(beta) == {r: 1 for r in readers}
