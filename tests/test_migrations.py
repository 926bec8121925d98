"""`mailer db upgrade` on both databases: idempotent, reversible, matching the models, and filling what it adds."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from mailer.extensions import db
from tests.conftest import ROOT, fresh_database, make_app


def mailer(*args: str, database_url: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "MAILER_INSTANCE": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "mailer", *args], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_upgrade_is_idempotent_reversible_and_matches_the_models(database, tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}" if database == "sqlite" else fresh_database("mailer_migrations")
    url = url.replace("postgresql+psycopg://", "postgresql://")
    for step in (["db", "upgrade"], ["db", "upgrade"], ["db", "check"], ["db", "downgrade", "base"],
                 ["db", "upgrade"], ["db", "check"]):
        result = mailer(*step, database_url=url, tmp_path=tmp_path)
        assert result.returncode == 0, f"mailer {' '.join(step)}:\n{result.stdout}\n{result.stderr}"
    assert "No new upgrade operations detected" in result.stdout + result.stderr


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_the_upgrade_marks_the_subscribers_an_import_brought_in(database, tmp_path):
    from flask_migrate import upgrade

    url = f"sqlite:///{tmp_path / 'm.db'}" if database == "sqlite" else fresh_database("mailer_imported")
    with make_app(tmp_path, SQLALCHEMY_DATABASE_URI=url).app_context():
        upgrade(revision="0008")
        people = {"signed@example.com": [("snippet", 0)], "filed@example.com": [("import", 0)],
                  "signed-then-filed@example.com": [("iframe", 0), ("import", 5)], "api@example.com": [("api", 0)]}
        for email, consents in people.items():
            sub_id = db.session.execute(text(
                "INSERT INTO subscriber (email, status, created_at, updated_at, welcome_step, digest_frequency) "
                "VALUES (:email, 'confirmed', :at, :at, 1, 'every') RETURNING id"),
                {"email": email, "at": "2026-11-01 09:00:00+00:00"}).scalar()
            for form, day in consents:
                db.session.execute(text("INSERT INTO consent (subscriber_id, form, consent_text, requested_at) "
                                        "VALUES (:id, :form, 'Consent', :at)"),
                                   {"id": sub_id, "form": form, "at": f"2026-11-{1 + day:02} 09:00:00+00:00"})
        db.session.commit()
        upgrade()
        marked = dict(db.session.execute(text("SELECT email, imported FROM subscriber")).all())
        assert {email: bool(flag) for email, flag in marked.items()} == {
            "signed@example.com": False, "filed@example.com": True, "signed-then-filed@example.com": False,
            "api@example.com": False}


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_the_upgrade_keys_the_bare_hashes_of_erased_addresses(database, tmp_path):
    import hashlib

    from flask_migrate import upgrade

    from mailer.people.privacy import email_hash, erased, erasure_record

    url = f"sqlite:///{tmp_path / 'm.db'}" if database == "sqlite" else fresh_database("mailer_erasures")
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=url, ERASURE_KEY="the production erasure key")
    with app.app_context():
        upgrade(revision="0014")
        bare = hashlib.sha256(b"erased@example.com").hexdigest()
        db.session.execute(text("INSERT INTO erased_address (email_hash, erased_at) VALUES (:h, :at)"),
                           {"h": bare, "at": "2026-11-01 09:00:00+00:00"})
        db.session.commit()
        upgrade()
        [stored] = db.session.execute(text("SELECT email_hash FROM erased_address")).scalars().all()
        assert stored != bare and stored == erasure_record(bare, "the production erasure key")
        assert stored == email_hash("Erased@Example.com")
        assert erased(db.session, ["erased@example.com", "kept@example.com"]) == {"erased@example.com"}


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_readers_mid_sequence_keep_their_place_when_steps_are_keyed_by_id(database, tmp_path):
    from flask_migrate import downgrade, upgrade

    from mailer.models import welcome_key
    from mailer.people import welcome_steps
    from mailer.people.welcome import advance_welcome_sequences

    url = f"sqlite:///{tmp_path / 'm.db'}" if database == "sqlite" else fresh_database("mailer_welcome_ids")
    with make_app(tmp_path, SQLALCHEMY_DATABASE_URI=url).app_context():
        upgrade(revision="0014")
        ids = {p: db.session.execute(text("SELECT id FROM welcome_step WHERE position = :p"), {"p": p}).scalar()
               for p in (1, 2, 3)}
        # Ann had steps 1 and 2; Bob passed step 2 while it was off; Cy was imported as confirmed (no rows).
        readers = {"ann@example.com": (2, {1: "sent", 2: "sent"}), "bob@example.com": (3, {1: "sent", 3: "sent"}),
                   "cy@example.com": (1, {})}
        sub = {}
        for email, (position, rows) in readers.items():
            sub[email] = db.session.execute(text(
                "INSERT INTO subscriber (email, status, created_at, updated_at, confirmed_at, welcome_step, "
                "welcome_next_at, digest_frequency, imported) VALUES (:email, 'confirmed', :at, :at, :at, :position, "
                ":next, 'every', false) RETURNING id"), {"email": email, "at": "2026-11-01 09:00:00+00:00",
                "position": position, "next": "2026-11-08 09:00:00+00:00" if position < 3 and rows else None}).scalar()
            for p, status in rows.items():
                db.session.execute(text(
                    "INSERT INTO delivery (kind, subscriber_id, dedupe_key, payload, status, attempts, next_attempt_at, "
                    "created_at) VALUES ('welcome', :sub, :key, :payload, :status, 1, :at, :at)"),
                    {"sub": sub[email], "key": f"welcome:{sub[email]}:{p}", "status": status,
                     "payload": '{"template": "%s"}' % ("welcome" if p == 1 else f"welcome_{p}"),
                     "at": "2026-11-01 09:00:00+00:00"})
        db.session.commit()
        upgrade()

        def keys(email):
            return dict(db.session.execute(text("SELECT dedupe_key, status FROM delivery WHERE subscriber_id = :s"),
                                           {"s": sub[email]}).all())

        assert keys("ann@example.com") == {welcome_key(sub["ann@example.com"], ids[1]): "sent",
                                           welcome_key(sub["ann@example.com"], ids[2]): "sent"}
        assert keys("bob@example.com") == {welcome_key(sub["bob@example.com"], ids[1]): "sent",
                                           welcome_key(sub["bob@example.com"], ids[2]): "skipped",
                                           welcome_key(sub["bob@example.com"], ids[3]): "sent"}
        assert keys("cy@example.com") == {}
        payload = db.session.execute(text("SELECT payload FROM delivery WHERE dedupe_key = :k"),
                                     {"k": welcome_key(sub["ann@example.com"], ids[2])}).scalar()
        assert (payload if isinstance(payload, dict) else __import__("json").loads(payload))["step_id"] == ids[2]

        # The author then moves the last step first: Ann gets it once, and nothing she had; Bob and Cy nothing.
        from mailer.models import WelcomeStep
        welcome_steps.move_step(db.session, db.session.get(WelcomeStep, ids[3]), -1)
        welcome_steps.move_step(db.session, db.session.get(WelcomeStep, ids[3]), -1)
        db.session.commit()
        from mailer.models import utcnow
        for _ in range(4):
            advance_welcome_sequences(db.session, now=utcnow())
            db.session.commit()
        assert keys("ann@example.com") == {welcome_key(sub["ann@example.com"], ids[1]): "sent",
                                           welcome_key(sub["ann@example.com"], ids[2]): "sent",
                                           welcome_key(sub["ann@example.com"], ids[3]): "queued"}
        assert len(keys("bob@example.com")) == 3 and keys("cy@example.com") == {}
        db.session.remove()
        downgrade(revision="0014")
        assert db.session.execute(text("SELECT count(*) FROM delivery WHERE dedupe_key = :k"),
                                  {"k": f"welcome:{sub['ann@example.com']}:2"}).scalar() == 1
