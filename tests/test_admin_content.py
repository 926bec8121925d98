"""Console pages for content: dashboard, posts, digests, lead magnets, welcome sequence, embed, outbox."""
from __future__ import annotations

import html
import io
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import Delivery, Digest, LeadMagnet, Post, Subscriber, Upload, WelcomeStep
from mailer.people import privacy
from tests import factories
from tests.admin_helpers import create_admin, fresh_g_per_request, log_in, token  # noqa: F401


def test_dashboard_shows_statuses_charts_and_latest_digests(admin):
    factories.subscribers(3)
    factories.subscribers(2, status="pending", prefix="new")
    page = admin.get("/admin/").text
    assert 'href="/admin/subscribers?status=confirmed"' in page and "<svg" in page and "<rect" in page
    assert "Of those signups, 60.0% have confirmed" in page  # 3 of 5
    assert "No digest has been sent yet" in page
    assert 'style="' not in page and "<script>" not in page  # the strict CSP allows neither


def chart_text(page: str, chart: str) -> tuple[list[str], list[str]]:
    """The numbers at the grid lines of a dashboard chart (zero first) and the dates under its bars."""
    frame = next(f for f in page.split('<div class="chart-frame">')[1:] if f'<svg class="chart {chart}"' in f)
    scale, bars = frame.split("</svg>", 1)
    return re.findall(r"<text[^>]*>([^<]*)</text>", scale), re.findall(r"<text[^>]*>([^<]*)</text>", bars)


def test_dashboard_charts_number_their_grid_lines_and_date_their_bars(admin):
    today = datetime.now(timezone.utc)
    factories.subscribers(3, created_at=today)
    factories.subscribers(1, status="pending", prefix="earlier", created_at=today - timedelta(days=20))
    page = admin.get("/admin/").text
    numbers, dates = chart_text(page, "signups")
    assert numbers == ["0", "1", "2", "3"]
    assert dates[-1] == f"{today.day} {today:%b}" and len(dates) == 6
    assert dates[-2] == f"{(today - timedelta(days=15)).day} {today - timedelta(days=15):%b}"
    assert chart_text(page, "rates") == (["0%", "25%", "50%", "75%", "100%"], dates)
    assert 'style="' not in page and "<script>" not in page  # the strict CSP allows neither

    factories.subscribers(4825, prefix="many", created_at=today - timedelta(days=1))
    assert chart_text(admin.get("/admin/").text, "signups")[0] == ["0", "2,000", "4,000", "6,000"]


def test_dashboard_counts_an_import_apart_from_the_signups(admin):
    from mailer.people.importing import import_subscribers
    from mailer.people.roster import add_subscribers
    from mailer.people.subscriptions import SignupRequest, subscribe

    for n in range(2):  # two people who used the blog's form and have not confirmed yet
        subscribe(db.session, SignupRequest(email=f"reader{n}@example.com", name=None, form="snippet"))
    add_subscribers(db.session, {"app@example.com": None}, confirmed=True, form="api", source="the API")
    db.session.commit()
    lines = ["email\n", "reader0@example.com\n", *(f"old{n}@example.org\n" for n in range(4825))]
    report = import_subscribers(db.session, lines, confirmed=True, source_name="list.csv")
    assert (report.created, report.updated) == (4825, 1)
    page = admin.get("/admin/").text
    assert "Last 90 days: 3 signups through the forms and the API; 4,825 more imported, not counted here" in page
    assert "Of those signups, 66.7% have confirmed" in page  # reader0 confirmed by the import, the API's one
    assert chart_text(page, "signups")[0] == ["0", "1", "2", "3"]


def test_a_confirmation_rate_short_of_all_never_reads_100_percent(admin):
    factories.subscribers(2499)
    factories.subscribers(1, status="pending", prefix="late")
    assert "Of those signups, 99.96% have confirmed" in admin.get("/admin/").text


def test_posts_list_add_edit_and_fetch_without_a_feed(admin):
    assert "No posts yet" in admin.get("/admin/posts").text
    form = {"csrf_token": token(admin, "/admin/posts/new"), "title": "Handling a counter-offer",
            "url": "https://blog.example.com/counter-offer/", "summary": "<p>Say <b>thanks</b>.</p><script>x</script>",
            "published_at": "2026-11-20T09:00"}
    assert admin.post("/admin/posts/new", data=form).status_code == 302
    post = db.session.scalar(select(Post))
    assert post.source == "manual" and "<script>" not in post.summary_html
    edit = admin.get(f"/admin/posts/{post.id}").text
    assert "Handling a counter-offer" in edit
    bad = admin.post(f"/admin/posts/{post.id}", data={**form, "url": "ftp://nope"})
    assert bad.status_code == 400 and "must start with http:// or https://" in bad.text
    moved = {**form, "title": "Handling a counter-offer well", "url": "https://blog.example.com/counter/"}
    assert admin.post(f"/admin/posts/{post.id}", data=moved).status_code == 302
    db.session.expire_all()
    assert [(p.title, p.url) for p in db.session.scalars(select(Post))] == [("Handling a counter-offer well", moved["url"])]
    fetched = admin.post("/admin/posts/fetch", data={"csrf_token": token(admin)}, follow_redirects=True)
    assert "No feed is configured" in fetched.text


def compose(admin, **extra):
    first, second = factories.post("First post", n=2), factories.post("Second post", n=1)
    return [first.id, second.id], {"post_ids": [first.id, second.id], "subject": "This week", "intro": "Hello!", **extra}


def test_compose_preview_test_send_confirm_send_and_steer(admin):
    factories.subscribers(3)
    ids, choice = compose(admin)
    page = admin.get("/admin/digests").text
    assert "First post" in page and "Second post" in page
    preview = admin.get("/admin/digests/preview", query_string=choice)
    assert preview.status_code == 200 and "This week" in preview.text and "3 confirmed subscribers" in preview.text
    assert "Hello!" in preview.text and 'sandbox' in preview.text
    html = admin.get("/admin/digests/preview.html", query_string=choice)
    assert "First post" in html.text and "script-src" not in html.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in html.headers["Content-Security-Policy"]
    confirm = admin.get("/admin/digests/preview", query_string={**choice, "confirm": "1"}).text
    assert "Yes, send it now" in confirm

    tested = admin.post("/admin/digests/test", data={**choice, "to": "me@example.com", "csrf_token": token(admin)})
    assert tested.status_code == 302 and db.session.scalar(select(Delivery.recipient)) == "me@example.com"
    assert admin.post("/admin/digests", data=choice).status_code == 400  # no CSRF token
    sent = admin.post("/admin/digests", data={**choice, "csrf_token": token(admin)})
    digest = db.session.scalar(select(Digest))
    assert sent.headers["Location"] == f"/admin/digests/{digest.id}" and digest.recipients == 3
    again = admin.post("/admin/digests", data={**choice, "csrf_token": token(admin)})  # the form sent twice
    assert again.headers["Location"] == f"/admin/digests/{digest.id}"
    assert "already on its way" in admin.get(again.headers["Location"]).text
    assert db.session.scalar(select(Digest.id).where(Digest.id != digest.id)) is None

    progress = admin.get(f"/admin/digests/{digest.id}/progress").get_json()
    assert (progress["status"], progress["pending"], progress["sent"], progress["percent"]) == ("sending", 3, 0, 0)
    assert 'data-progress="/admin/digests/' in admin.get(f"/admin/digests/{digest.id}").text
    steer = f"/admin/digests/{digest.id}/"
    assert "Paused" in admin.post(steer + "pause", data={"csrf_token": token(admin)}, follow_redirects=True).text
    assert admin.get(steer + "progress").get_json()["status"] == "paused"
    assert "Resumed" in admin.post(steer + "resume", data={"csrf_token": token(admin)}, follow_redirects=True).text
    assert "Cancelled" in admin.post(steer + "cancel", data={"csrf_token": token(admin)}, follow_redirects=True).text
    done = admin.get(steer + "progress").get_json()
    assert (done["status"], done["skipped"], done["pending"], done["percent"]) == ("cancelled", 3, 0, 100)
    db.session.expire_all()
    assert db.session.get(Digest, digest.id).skipped_count == 3  # final counts kept on the digest
    assert "is cancelled; only a digest that is paused can resume" in admin.post(steer + "resume", data={"csrf_token": token(admin)}, follow_redirects=True).text
    history = admin.get("/admin/digests").text
    assert "This week" in history and "cancelled" in history


def test_a_finished_digest_refuses_pause_and_cancel_and_its_posts_stay_sent(admin):
    factories.subscribers(3)
    ids, choice = compose(admin)
    admin.post("/admin/digests", data={**choice, "csrf_token": token(admin)})
    db.session.execute(Delivery.__table__.update().values(status="sent"))
    db.session.execute(Delivery.__table__.update().where(Delivery.id == 2).values(status="failed"))
    db.session.execute(Delivery.__table__.update().where(Delivery.id == 3).values(status="skipped"))
    db.session.commit()
    steer = "/admin/digests/1/"

    for action in ("pause", "cancel"):
        page = admin.post(steer + action, data={"csrf_token": token(admin)}, follow_redirects=True).text
        assert f"has finished sending: there is no mail left to {action}" in page
    db.session.expire_all()
    assert db.session.get(Digest, 1).status == "sending"
    assert not any(f'value="{i}"' in admin.get("/admin/digests").text for i in ids)  # not offered again


def test_a_paused_digest_whose_held_readers_were_all_erased_reads_as_sent(admin):
    factories.subscribers(2)
    _, choice = compose(admin)
    admin.post("/admin/digests", data={**choice, "csrf_token": token(admin)})
    in_flight, held = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
    in_flight.status = "sending"
    db.session.commit()
    assert "Paused" in admin.post("/admin/digests/1/pause", data={"csrf_token": token(admin)}, follow_redirects=True).text
    privacy.erase_subscriber(db.session, db.session.get(Subscriber, held.subscriber_id))  # their mails go with them
    db.session.execute(Delivery.__table__.update().values(status="sent"))  # the worker's mail went
    db.session.commit()

    assert admin.get("/admin/digests/1/progress").get_json()["status"] == "sent"


def test_a_finished_digest_keeps_its_counts_and_the_history_no_longer_counts_the_ledger(admin):
    factories.subscribers(2)
    _, choice = compose(admin)
    admin.post("/admin/digests", data={**choice, "csrf_token": token(admin)})
    db.session.execute(Delivery.__table__.update().values(status="sent"))
    db.session.commit()
    assert admin.get("/admin/").text.count('class="badge sent"') == 1
    db.session.execute(Delivery.__table__.delete())  # were the ledger read again, it would say 0
    db.session.commit()
    result = admin.get("/admin/digests/1/progress").get_json()
    assert (result["status"], result["sent"], result["percent"]) == ("sent", 2, 100)


def test_a_new_choice_of_posts_sharing_one_with_a_digest_just_sent_is_not_taken_for_a_resubmission(admin):
    factories.subscribers(2)
    ids, choice = compose(admin)
    admin.post("/admin/digests", data={**choice, "post_ids": ids[:1], "csrf_token": token(admin)})
    later = admin.post("/admin/digests", data={**choice, "csrf_token": token(admin)}, follow_redirects=True)
    assert "already on its way" not in later.text and "Nothing was sent" in later.text
    assert db.session.scalar(select(func.count()).select_from(Digest)) == 1


def test_preview_with_no_post_ticked_says_so(admin):
    factories.post()
    response = admin.get("/admin/digests/preview", follow_redirects=True)
    assert "tick at least one post" in response.text and "no new posts" not in response.text


@pytest.mark.parametrize("subject", ["a\nb", "a\rb", "a\u2028b", "x" * 201])
def test_a_preview_or_test_copy_with_a_bad_subject_says_what_is_wrong(admin, subject):
    ids, choice = compose(admin, subject=subject)
    preview = admin.get("/admin/digests/preview", query_string=choice, follow_redirects=True)
    assert preview.status_code == 200 and "the subject must be one line of at most 200 characters" in preview.text
    assert admin.get("/admin/digests/preview.html", query_string=choice).status_code == 409
    tested = admin.post("/admin/digests/test", data={**choice, "to": "me@example.com", "csrf_token": token(admin)},
                        follow_redirects=True)
    assert tested.status_code == 200 and "Cannot send the test:" in tested.text  # and why: the form's or ours
    assert db.session.scalar(select(Delivery.id)) is None


@pytest.mark.parametrize("path", ["/admin/subscribers/99999999999999999999999",
                                  "/admin/subscribers/99999999999999999999999/data.json",
                                  "/admin/digests/99999999999999999999999", "/admin/digests/9223372036854775808/progress",
                                  "/admin/posts/99999999999999999999999", "/admin/magnets/99999999999999999999999",
                                  "/admin/welcome/99999999999999999999999", "/api/v1/digests/99999999999999999999999"])
def test_an_id_too_large_for_the_database_is_not_found(admin, path):
    assert admin.get(path).status_code == 404


@pytest.mark.parametrize("page", ["subscribers", "posts", "digests"])
@pytest.mark.parametrize("before", ["99999999999999999999999", "-1", "²", "x"])
def test_a_page_cursor_that_is_no_row_id_gives_the_first_page(admin, page, before):
    from mailer.posts import digests

    factories.subscribers(2)
    factories.post()
    digests.create_digest(db.session)
    db.session.commit()

    def rows(response) -> list[str]:
        assert response.status_code == 200
        return re.findall(rf'href="/admin/{page}/(\d+)', response.text)

    first_page = rows(admin.get(f"/admin/{page}"))
    assert first_page and rows(admin.get(f"/admin/{page}?before={before}")) == first_page


def test_post_ids_that_are_no_row_ids_are_left_out(admin):
    ids, choice = compose(admin)
    choice["post_ids"] = [*ids, "99999999999999999999999", "²"]
    preview = admin.get("/admin/digests/preview", query_string=choice)
    assert preview.status_code == 200 and "First post" in preview.text


def stored_bytes(magnet_id: int) -> bytes:
    from mailer.uploads import store

    with store.open_upload(db.engine, store.newest_for_magnet(db.session, magnet_id)) as f:
        return f.read()


def test_magnets_list_new_upload_and_edit(admin, app, tmp_path):
    assert "Manager&#39;s Handbook" in admin.get("/admin/magnets").text
    form = {"csrf_token": token(admin, "/admin/magnets/new"), "slug": "checklist", "title": "Interview checklist",
            "description": "One page.", "file": (io.BytesIO(b"%PDF-1.4 test"), "Check list.pdf")}
    assert admin.post("/admin/magnets/new", data=form, content_type="multipart/form-data").status_code == 302
    magnet = db.session.scalar(select(LeadMagnet).where(LeadMagnet.slug == "checklist"))
    assert magnet.file == "" and not (tmp_path / "magnets").exists()  # in the database, on no host's disk
    assert stored_bytes(magnet.id) == b"%PDF-1.4 test"
    assert magnet.filename == "Check_list.pdf" and magnet.content_type == "application/pdf"
    dup = {**form, "file": (io.BytesIO(b"x"), "x.pdf"), "csrf_token": token(admin, "/admin/magnets/new")}
    assert "already a magnet" in admin.post("/admin/magnets/new", data=dup, content_type="multipart/form-data").text
    edit = {"csrf_token": token(admin, f"/admin/magnets/{magnet.id}"), "title": "The interview checklist",
            "description": "Two pages.", "file": (io.BytesIO(b"%PDF-1.5 new"), "v2.pdf")}
    assert admin.post(f"/admin/magnets/{magnet.id}", data=edit, content_type="multipart/form-data").status_code == 302
    db.session.expire_all()
    magnet = db.session.get(LeadMagnet, magnet.id)
    assert magnet.title == "The interview checklist" and stored_bytes(magnet.id) == b"%PDF-1.5 new"
    assert db.session.scalar(select(func.count()).select_from(Upload)) == 1  # the file it replaced is gone
    from mailer.links import download_url

    factories.subscribers(1)
    link = download_url(1, magnet.id).removeprefix(app.config["BASE_URL"])
    with admin.get(link) as download:
        assert download.data == b"%PDF-1.5 new"  # a link already mailed downloads the new file


def test_welcome_steps_edit_preview_and_switch(admin):
    steps = list(db.session.scalars(select(WelcomeStep).order_by(WelcomeStep.position)))
    page = admin.get("/admin/welcome").text
    assert "Welcome to Career Q&amp;A" in page and "Turn off" in page
    step = steps[1]
    form = {"csrf_token": token(admin, f"/admin/welcome/{step.id}"), "delay": "2", "subject": "Two tips",
            "body": "First tip.\n\nSecond <tip>.", "enabled": "y"}
    assert admin.post(f"/admin/welcome/{step.id}", data=form).status_code == 302
    html = admin.get(f"/admin/welcome/{step.id}/preview.html").text
    assert "Hi Alex," in html and "Second &lt;tip&gt;." in html
    assert "Two tips" in admin.get(f"/admin/welcome/{step.id}").text
    for broken in ("a\r\nBcc: x", "a\u2028Bcc: x", "a\x85Bcc: x"):
        bad = admin.post(f"/admin/welcome/{step.id}", data={**form, "subject": broken})
        assert bad.status_code == 400 and "must be one line" in bad.text
    assert admin.get(f"/admin/welcome/{step.id}/preview.html").status_code == 200  # the saved step still builds
    assert "is off" in admin.post("/admin/welcome/off", data={"csrf_token": token(admin)}, follow_redirects=True).text
    assert not any(db.session.scalars(select(WelcomeStep.enabled)))
    admin.post("/admin/welcome/on", data={"csrf_token": token(admin)})
    assert all(db.session.scalars(select(WelcomeStep.enabled)))


def test_a_sent_welcome_step_uses_the_words_written_in_the_console(app):
    from mailer.outbox.compose import compose as compose_mail

    [email] = factories.subscribers(1)
    step = db.session.scalar(select(WelcomeStep).where(WelcomeStep.position == 2))
    step.subject, step.body = "Your own subject", "Your own words."
    db.session.commit()
    delivery = Delivery(kind="welcome", subscriber_id=1, dedupe_key="welcome:1:2", payload={"template": step.template})
    db.session.add(delivery)
    db.session.commit()
    msg = compose_mail(delivery, delivery.subscriber).parsed()
    assert msg["Subject"] == "Your own subject" and "Your own words." in msg.get_body(("plain",)).get_content()
    first = db.session.scalar(select(WelcomeStep).where(WelcomeStep.position == 1))
    other = Delivery(kind="welcome", subscriber_id=1, dedupe_key="welcome:1:1", payload={"template": first.template})
    db.session.add(other)
    db.session.commit()
    assert compose_mail(other, other.subscriber).parsed()["Subject"] == "Welcome to Career Q&A"  # unedited: the template


def test_embed_shows_the_three_snippets_and_a_live_preview(admin):
    page = admin.get("/admin/embed").text
    assert page.count("data-copy=") == 3 and "/embed.js" in page and 'src="/embed?magnet=handbook"' in page


def test_the_snippets_and_the_form_speak_of_the_chosen_magnet(admin):
    db.session.add(LeadMagnet(slug="checklist-2027", title="The 2027 Checklist", description="Ten steps for 2027.",
                              file="x.pdf", filename="x.pdf"))
    db.session.commit()
    page = admin.get("/admin/embed?magnet=checklist-2027").text
    snippets = html.unescape(page)
    assert '<button type="submit">Get The 2027 Checklist</button>' in snippets
    assert 'title="Get The 2027 Checklist"' in snippets and 'data-button="Get The 2027 Checklist"' in snippets
    assert "Get the handbook" not in snippets
    assert 'aria-label="Email"' in snippets and 'aria-label="First name (optional)"' in snippets  # no visible labels
    form = admin.get("/embed?magnet=checklist-2027").text
    assert "<h2>The 2027 Checklist</h2>" in form and "Ten steps for 2027. Free, by email." in form
    assert ">Get The 2027 Checklist</button>" in form and "Handbook" not in form
    refused = admin.post("/subscribe", data={"email": "nope", "magnet": "checklist-2027", "form": "iframe"})
    assert refused.status_code == 422 and ">Get The 2027 Checklist</button>" in refused.text
    handbook = admin.get("/embed").text
    assert "<h2>The Multigenerational Manager&#39;s Handbook</h2>" in handbook and ">Get the handbook</button>" in handbook


def test_the_outbox_pages_back_to_older_mail(admin, app, monkeypatch):
    from mailer.admin import outbox as console_outbox

    monkeypatch.setattr(console_outbox, "SHOWN", 2)
    folder = Path(app.config["OUTBOX_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(1, 6):
        (folder / f"000{n}.eml").write_bytes(f"Subject: Mail {n}\r\nTo: a@example.com\r\n\r\nBody\r\n".encode())
    seen, url = [], "/admin/outbox"
    while url:
        page = admin.get(url).text
        seen += re.findall(r">Mail (\d)</a>", page)
        older = re.search(r'href="(/admin/outbox\?before=[^"]+)">Older', page)
        url = older.group(1) if older else None
    assert seen == ["5", "4", "3", "2", "1"]


def test_outbox_reads_local_mail_and_is_gone_with_smtp(admin, app):
    folder = Path(app.config["OUTBOX_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "0001.eml").write_bytes(b"Subject: Hello there\r\nTo: a@example.com\r\nFrom: b@example.com\r\n"
                                      b"Content-Type: text/plain\r\n\r\nBody text\r\n")
    assert "Hello there" in admin.get("/admin/outbox").text
    mail = admin.get("/admin/outbox/0001.eml").text
    assert "Body text" in mail
    assert admin.get("/admin/outbox/..%2Fmailer.db").status_code == 404
    app.config["SMTP_URL"] = "smtp://mail.example.com:25"
    assert admin.get("/admin/outbox").status_code == 404
