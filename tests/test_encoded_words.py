"""Encoded words (RFC 2047) that hide a line break or a control character: refused where a person types them."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailer.api_tokens import create_token
from mailer.extensions import db
from mailer.models import LeadMagnet, Post, WelcomeStep
from tests import factories
from tests.admin_helpers import create_admin, fresh_g_per_request, log_in, token  # noqa: F401

HIDDEN = ["=?utf-8?q?Career_Q=26A=0D=0ABcc:_victim@example.net?=",
          "=?UTF-8?B?SGkNCkJjYzogdmljdGltQGV4YW1wbGUubmV0?=",  # base64, upper-case charset and encoding
          "Hello =?utf-8?q?keep_in_touch=07?=",  # BEL
          "Hello =?iso-8859-1?q?=85?= there",  # NEL in Latin-1
          "Hello =?utf-8?q?=E2=80=A8?= there",  # LINE SEPARATOR
          "Hello =?x-unknown?q?=0A?= there",  # an unknown charset still carries its bytes
          "=?utf-8*en?q?a=0Db?="]  # RFC 2231 language
POST = {"url": "https://blog.example.com/hidden/"}


@pytest.fixture
def auth(app) -> dict[str, str]:
    key = create_token(db.session, "t")
    db.session.commit()
    return {"Authorization": f"Bearer {key}"}


def post_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Post))


@pytest.mark.parametrize("title", HIDDEN)
def test_the_api_refuses_a_post_title_hiding_a_control_character(client, auth, title):
    response = client.post("/api/v1/posts", json={**POST, "title": title}, headers=auth)
    assert response.status_code == 422 and response.json["field"] == "title"
    assert "encoded word" in response.json["error"] and post_count() == 0


def test_an_encoded_word_without_a_control_character_is_stored_as_readers_see_it(client, auth):
    response = client.post("/api/v1/posts", json={**POST, "title": "=?utf-8?q?Caf=C3=A9_culture?= at work"},
                           headers=auth)
    assert response.status_code == 201 and db.session.scalar(select(Post.title)) == "Café culture at work"


def test_a_nested_encoded_word_is_opened_until_nothing_hides_in_it():
    from mailer.mail.messages import has_control_character
    from mailer.posts.store import clean_title

    nested = "=?utf-8?q?=3D=3Futf-8=3Fq=3Fa=3D0D=3D0Ab=3F=3D?="  # decodes to =?utf-8?q?a=0D=0Ab?=
    assert clean_title(nested) == "a b"
    deep = nested
    for _ in range(4):
        deep = "=?utf-8?b?" + __import__("base64").b64encode(deep.encode()).decode() + "?="
    assert not has_control_character(clean_title(deep))


@pytest.mark.parametrize("subject", HIDDEN[:3])
def test_the_api_refuses_a_digest_subject_hiding_a_line_break(client, auth, subject):
    factories.post()
    response = client.post("/api/v1/digests", json={"subject": subject}, headers=auth)
    assert response.status_code == 422 and response.json["field"] == "subject"
    assert "encoded word" in response.json["error"]
    dry = client.post("/api/v1/digests", json={"subject": subject, "dry_run": True}, headers=auth)
    assert dry.status_code == 422


def test_the_console_refuses_a_post_title_hiding_a_line_break(admin):
    form = {"csrf_token": token(admin, "/admin/posts/new"), "title": HIDDEN[0], "url": POST["url"],
            "summary": "", "published_at": ""}
    response = admin.post("/admin/posts/new", data=form)
    assert response.status_code == 400 and "encoded word" in response.text and post_count() == 0


def test_the_console_refuses_a_digest_subject_hiding_a_line_break(admin):
    post = factories.post()
    choice = {"post_ids": [post.id], "subject": HIDDEN[1], "intro": ""}
    preview = admin.get("/admin/digests/preview", query_string=choice, follow_redirects=True)
    assert "the subject must be one line" in preview.text
    sent = admin.post("/admin/digests", data={**choice, "csrf_token": token(admin)}, follow_redirects=True)
    assert "the subject must be one line" in sent.text


def test_the_console_refuses_a_welcome_subject_or_magnet_title_hiding_a_line_break(admin):
    step = db.session.scalar(select(WelcomeStep).order_by(WelcomeStep.position).limit(1))
    path = f"/admin/welcome/{step.id}"
    response = admin.post(path, data={"csrf_token": token(admin, path), "subject": HIDDEN[0], "body": "",
                                      "delay": "0", "enabled": "y"})
    assert response.status_code == 400 and "one line" in response.text
    db.session.expire_all()
    assert db.session.get(WelcomeStep, step.id).subject is None

    magnet = db.session.scalar(select(LeadMagnet).limit(1))
    path = f"/admin/magnets/{magnet.id}"
    response = admin.post(path, data={"csrf_token": token(admin, path), "title": HIDDEN[1], "description": ""})
    assert response.status_code == 400 and "one line" in response.text
    db.session.expire_all()
    assert db.session.get(LeadMagnet, magnet.id).title != HIDDEN[1]
