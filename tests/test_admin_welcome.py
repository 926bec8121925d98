"""The sequence editor in the console: steps added, moved and deleted without JavaScript, words, preview, test copy."""
from __future__ import annotations

import html

from sqlalchemy import select

from mailer.extensions import db
from mailer.models import Delivery, LeadMagnet, WelcomeStep
from mailer.outbox.compose import built_in_words, compose
from tests.admin_helpers import EMAIL, token


def order() -> list[int]:
    return list(db.session.scalars(select(WelcomeStep.id).where(WelcomeStep.magnet_id.is_(None))
                                   .order_by(WelcomeStep.position)))


def test_steps_are_added_moved_and_deleted_with_plain_forms(admin):
    csrf = token(admin, "/admin/welcome")
    added = admin.post("/admin/welcome/new", data={"csrf_token": csrf})
    new_id = int(added.headers["Location"].rsplit("/", 1)[1])
    assert order() == [1, 2, 3, new_id] and not db.session.get(WelcomeStep, new_id).enabled
    assert admin.post(f"/admin/welcome/{new_id}/up", data={"csrf_token": csrf}).status_code == 302
    assert order() == [1, 2, new_id, 3]
    admin.post("/admin/welcome/1/up", data={"csrf_token": csrf})  # the first stays first
    admin.post("/admin/welcome/1/down", data={"csrf_token": csrf})
    assert order() == [2, 1, new_id, 3]
    page = admin.get("/admin/welcome").text
    assert page.count('title="Move up"') == 4 and "Add a step" in page
    assert admin.post(f"/admin/welcome/{new_id}/delete", data={"csrf_token": csrf}).status_code == 302
    assert order() == [2, 1, 3]
    assert admin.post("/admin/welcome/2/up", data={}).status_code == 400  # no CSRF token: nothing moves
    assert admin.post("/admin/welcome/999/delete", data={"csrf_token": csrf}).status_code == 404


def test_the_editor_opens_with_the_built_in_words_and_keeps_them_built_in_when_unchanged(admin):
    page = html.unescape(admin.get("/admin/welcome/1").text)
    assert 'value="Welcome to Career Q&A"' in page and "Welcome, and thank you for subscribing." in page
    assert "Hours after confirmation" in page and "Days after confirmation" in html.unescape(
        admin.get("/admin/welcome/2").text)
    body = db.session.get(WelcomeStep, 1)
    csrf = token(admin, "/admin/welcome/1")
    form = {"csrf_token": csrf, "delay": "0", "subject": "Welcome to Career Q&A", "enabled": "y",
            "body": built_in_words("welcome")[1]}  # as the editor shows them (the settings' welcome text in place)
    assert admin.post("/admin/welcome/1", data=form).status_code == 302
    db.session.refresh(body)
    assert (body.subject, body.body) == (None, None)  # still the template's: a later change to it still applies
    assert admin.post("/admin/welcome/2", data={**form, "delay": "3"}).status_code == 302
    assert db.session.get(WelcomeStep, 2).delay_hours == 72  # days for the steps after the first
    bad = admin.post("/admin/welcome/2", data={**form, "delay": "soon"})
    assert bad.status_code == 400


def test_the_preview_is_the_mail_that_goes_and_a_test_copy_goes_to_the_admin(admin, app):
    csrf = token(admin, "/admin/welcome/2")
    admin.post("/admin/welcome/2", data={"csrf_token": csrf, "delay": "2", "subject": "Two tips", "enabled": "y",
                                         "body": "First **tip**, see [the post](https://blog.example.com/p/).\n\n"
                                                 "- one\n- two"})
    preview = admin.get("/admin/welcome/2/preview.html").text
    assert "<strong>tip</strong>" in preview and '<a href="https://blog.example.com/p/"' in preview
    assert "/preferences/" in preview and "/unsubscribe/" in preview and "Hi Alex," in preview
    text = html.unescape(admin.get("/admin/welcome/2").text)
    assert "First tip, see the post (https://blog.example.com/p/)." in text and "**" not in text.split("Plain text")[1]
    assert f'value="{EMAIL}"' in text  # the test copy goes to the signed-in admin unless changed
    assert admin.post("/admin/welcome/2/test", data={"csrf_token": csrf, "to": EMAIL}).status_code == 302
    copy = db.session.scalar(select(Delivery).where(Delivery.kind == "test"))
    assert copy.recipient == EMAIL and copy.subscriber_id is None
    mail = compose(copy, None).parsed()
    assert mail["Subject"] == "[Test] Two tips"
    plain = mail.get_body(("plain",)).get_content()
    assert "First tip, see the post (https://blog.example.com/p/)." in plain and "/preferences/" in plain
    bad = admin.post("/admin/welcome/2/test", data={"csrf_token": csrf, "to": "not an address"},
                     follow_redirects=True)
    assert "Cannot send the test" in bad.text
    assert db.session.query(Delivery).filter_by(kind="test").count() == 1


def test_a_magnet_has_its_own_follow_up_steps(admin):
    db.session.add(LeadMagnet(slug="course", title="A five-part course", file="x.pdf", filename="x.pdf"))
    db.session.commit()
    magnet = db.session.scalar(select(LeadMagnet).where(LeadMagnet.slug == "course"))
    assert f"/admin/magnets/{magnet.id}/steps" in admin.get("/admin/magnets").text
    csrf = token(admin, f"/admin/magnets/{magnet.id}/steps")
    added = admin.post(f"/admin/magnets/{magnet.id}/steps/new", data={"csrf_token": csrf})
    step = db.session.get(WelcomeStep, int(added.headers["Location"].rsplit("/", 1)[1]))
    assert step.magnet_id == magnet.id and order() == [1, 2, 3]
    page = html.unescape(admin.get(f"/admin/welcome/{step.id}").text)
    assert "Hours after taking the magnet" in page
    off = admin.post(f"/admin/welcome/{step.id}", data={"csrf_token": csrf, "delay": "0", "subject": "Part 1",
                                                         "body": "", "enabled": "y"})
    assert off.status_code == 400 and "Write a subject and a body" in html.unescape(off.text)
    assert admin.get("/admin/magnets/999/steps").status_code == 404
