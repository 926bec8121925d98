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
