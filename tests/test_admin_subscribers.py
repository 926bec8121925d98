"""Console subscribers: search, keyset pages, the record, unsubscribe, CSV export and import by upload."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from mailer.admin import imports
from mailer.extensions import db
from mailer.models import Consent, Delivery, Download, LeadMagnet, MailEvent, Subscriber
from tests import factories
from tests.admin_helpers import create_admin, fresh_g_per_request, log_in, token  # noqa: F401


@pytest.fixture
def admin(client):
    create_admin()
    log_in(client)
    return client


def test_search_by_exact_email_prefix_and_name_prefix_with_status_filter(admin):
    factories.subscribers(3, prefix="ann")
    factories.subscribers(2, status="pending", prefix="bob")
    db.session.execute(Subscriber.__table__.update().where(Subscriber.email == "bob1@example.com").values(name="Zoë Archer"))
    db.session.commit()
    assert "ann1@example.com" in admin.get("/admin/subscribers?q=ANN1@example.com").text
    exact = admin.get("/admin/subscribers?q=ann1@example.com").text
    assert "ann0@example.com" not in exact and "ann2@example.com" not in exact
    prefix = admin.get("/admin/subscribers?q=ann").text
    assert all(f"ann{n}@example.com" in prefix for n in range(3)) and "bob0" not in prefix
    assert "bob1@example.com" in admin.get("/admin/subscribers?q=zoë").text
    pending = admin.get("/admin/subscribers?status=pending").text
    assert "bob0@example.com" in pending and "ann0@example.com" not in pending
    assert "No subscriber matches" in admin.get("/admin/subscribers?q=%25").text  # LIKE wildcards are literal
    assert admin.get("/admin/subscribers?q=a_n").text.count("@example.com</a>") == 0


def test_the_list_pages_by_keyset_newest_first(admin, monkeypatch):
    from mailer.admin import search

    monkeypatch.setattr(search, "PAGE", 2)
    factories.subscribers(5)
    first = admin.get("/admin/subscribers").text
    assert "reader4@" in first and "reader3@" in first and "reader2@" not in first
    ids = [s.id for s in db.session.scalars(select(Subscriber).order_by(Subscriber.id))]
    assert f"before={ids[3]}" in first
    second = admin.get(f"/admin/subscribers?before={ids[3]}").text
    assert "reader2@" in second and "reader1@" in second and "reader4@" not in second
    last = admin.get(f"/admin/subscribers?before={ids[1]}").text
    assert "reader0@" in last and "Older" not in last


def test_the_record_shows_consent_mails_downloads_and_events_and_unsubscribes(admin):
    [email] = factories.subscribers(1)
    person = db.session.scalar(select(Subscriber))
    magnet = db.session.scalar(select(LeadMagnet))
    db.session.add_all([
        Consent(subscriber_id=person.id, form="iframe", ip="198.51.100.4", consent_text="Send me the handbook.",
                source_url="https://blog.example.com/post/"),
        Delivery(kind="welcome", subscriber_id=person.id, dedupe_key="welcome:x", status="queued"),
        Download(subscriber_id=person.id, magnet_id=magnet.id),
        MailEvent(event_key="dsn:1", provider="dsn", kind="soft_bounce", subscriber_id=person.id, detail="mailbox full"),
    ])
    db.session.commit()
    page = admin.get(f"/admin/subscribers/{person.id}").text
    for text in (email, "Send me the handbook.", "198.51.100.4", "welcome", "Manager&#39;s Handbook", "mailbox full"):
        assert text in page
    assert admin.post(f"/admin/subscribers/{person.id}/unsubscribe").status_code == 400  # no CSRF token
    done = admin.post(f"/admin/subscribers/{person.id}/unsubscribe", data={"csrf_token": token(admin)},
                      follow_redirects=True)
    assert "is unsubscribed" in done.text
    db.session.expire_all()
    assert db.session.get(Subscriber, person.id).status == "unsubscribed"
    assert db.session.scalar(select(Delivery.status)) == "skipped"
    assert admin.get("/admin/subscribers/999999").status_code == 404


def test_a_person_s_data_export_and_erasure(admin):
    factories.subscribers(1)
    person = db.session.scalar(select(Subscriber))
    data = admin.get(f"/admin/subscribers/{person.id}/data.json")
    assert data.get_json()["subscriber"]["email"] == "reader0@example.com" and "attachment" in data.headers["Content-Disposition"]
    assert admin.post(f"/admin/subscribers/{person.id}/erase").status_code == 400  # no CSRF token
    done = admin.post(f"/admin/subscribers/{person.id}/erase", data={"csrf_token": token(admin)}, follow_redirects=True)
    assert "is erased" in done.text
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_export_streams_the_csv_of_a_status(admin, monkeypatch):
    from mailer.people import exporting

    monkeypatch.setattr(exporting, "BATCH", 2)
    factories.subscribers(3)
    factories.subscribers(1, status="pending", prefix="wait")
    response = admin.get("/admin/subscribers/export.csv?status=confirmed")
    assert response.is_streamed and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted(r["email"] for r in rows) == [f"reader{n}@example.com" for n in range(3)]
    assert len(list(csv.DictReader(io.StringIO(admin.get("/admin/subscribers/export.csv").text)))) == 4


def upload(admin, content: bytes, confirmed: bool = False, name: str = "list.csv"):
    data = {"csrf_token": token(admin, "/admin/subscribers/import"), "file": (io.BytesIO(content), name)}
    if confirmed:
        data["confirmed"] = "y"
    return admin.post("/admin/subscribers/import", data=data, content_type="multipart/form-data")


def test_import_by_upload_runs_in_chunks_and_reports_rejected_lines(admin, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 2)
    content = ('email,name\nann@example.com,Ann\nnot-an-email,X\nbob@example.com,"Bob\nJr"\n'
               'cy@example.com,Cy\nbad@,Y\nann@example.com,Ann again\n').encode()
    started = upload(admin, content, confirmed=True)
    assert started.status_code == 302
    page = admin.get(started.headers["Location"])
    assert "Importing list.csv" in page.text and "data-import-step" in page.text
    step_url = started.headers["Location"] + "/step"
    assert admin.post(step_url, headers={"Accept": "application/json"}).status_code == 400  # no CSRF token
    headers = {"Accept": "application/json", "X-CSRFToken": token(admin)}
    states = []
    while not (states and states[-1]["done"]):
        states.append(admin.post(step_url, headers=headers).get_json())
    assert len(states) == 3 and states[0]["percent"] < 100 == states[-1]["percent"]
    final = states[-1]
    assert (final["rows"], final["created"], final["skipped"]) == (6, 2, 3)
    assert [line for line, _ in final["bad_lines"]] == [3, 4, 7]  # Bob's quoted name spans lines 4 and 5
    assert "not a valid email" in final["bad_lines"][0][1] and "bad name" in final["bad_lines"][1][1]
    assert db.session.scalar(select(func.count()).select_from(Subscriber).where(Subscriber.status == "confirmed")) == 2
    report = admin.get(started.headers["Location"]).text
    assert "Rejected lines" in report and "not-an-email" in report and "Done" in report


def test_import_without_script_steps_with_a_button_and_queues_confirmations(admin):
    started = upload(admin, b"email\nnew@example.com\n")
    done = admin.post(started.headers["Location"] + "/step", data={"csrf_token": token(admin)}, follow_redirects=True)
    assert "Done" in done.text and "Confirmation emails queued" in done.text
    assert db.session.scalar(select(Delivery.kind)) == "confirmation"


def import_all(admin, started) -> dict:
    """Step an uploaded import to its end as the page's script does; the last state."""
    headers = {"Accept": "application/json", "X-CSRFToken": token(admin)}
    state = {"done": False}
    while not state["done"]:
        state = admin.post(started.headers["Location"] + "/step", headers=headers).get_json()
    return state


@pytest.mark.parametrize("body", [
    b'email,name\na@example.com,A\nb@example.com,B\n"c@example.com";"C"\nd@example.com,D\n',  # a part opening ;
    b'email;name\na@example.com;A\nb@example.com;B\nc,x@example.com;"C, Jr"\nd@example.com;D\n',  # a part opening ,
])
def test_a_file_imported_in_parts_is_read_with_one_delimiter_throughout(admin, monkeypatch, body):
    monkeypatch.setattr(imports, "CHUNK", 2)
    final = import_all(admin, upload(admin, body, confirmed=True))
    assert final["done"] and final["error"] is None
    assert final["created"] == 3 and final["rows"] == 4 and final["skipped"] == 1  # the odd line, reported
    assert "d@example.com" in db.session.scalars(select(Subscriber.email)).all()


def test_an_import_that_stops_at_a_line_keeps_the_rows_before_it(admin, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 3)
    started = upload(admin, b"email\na@example.com\nb@example.com\nc@example.com\nd@example.com\n"
                            b"\xff@example.com\ne@example.com\n", confirmed=True)
    final = import_all(admin, started)
    assert final["error"].startswith("Line 6 is not UTF-8 text") and "lines before it are saved" in final["error"]
    assert (final["rows"], final["created"]) == (4, 4)  # d, read in the same step as the bad line, is saved too
    assert db.session.scalars(select(Subscriber.email).order_by(Subscriber.email)).all() == [
        "a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    assert "Stopped" in admin.get(started.headers["Location"]).text


def test_an_import_names_the_line_of_a_quote_never_closed_and_imports_nothing_after_it(admin, monkeypatch):
    monkeypatch.setattr(imports, "CHUNK", 2)
    started = upload(admin, b'email,name\na@example.com,A\nb@example.com,B\nc@example.com,C\n'
                            b'q1@example.com,"open quote\nq2@example.com,ok\n', confirmed=True)
    final = import_all(admin, started)
    assert final["error"].startswith('Line 5 opens a quote (") that is never closed')
    assert "every line after it" in final["error"] and "close the quote" in final["error"]
    assert (final["rows"], final["created"], final["skipped"], final["bad_lines"]) == (3, 3, 0, [])
    assert db.session.scalars(select(Subscriber.email).order_by(Subscriber.email)).all() == [
        "a@example.com", "b@example.com", "c@example.com"]
    page = admin.get(started.headers["Location"]).text
    assert "Stopped" in page and "Line 5 opens a quote" in page


def test_the_import_report_counts_each_row_once_erased_and_unsubscribed_apart(admin):
    from tests.test_import_export import unsubscribed_alice_and_erased_bob

    started = upload(admin, unsubscribed_alice_and_erased_bob().encode(), confirmed=True)
    final = import_all(admin, started)
    assert {k: final[k] for k in imports.COUNTS} == {
        "rows": 3, "created": 1, "updated": 0, "duplicates": 0, "suppressed": 1, "erased": 1, "skipped": 0,
        "mails_owed": 0}
    assert final["rows"] == sum(final[k] for k in imports.COUNTS if k not in ("rows", "mails_owed"))
    assert db.session.scalar(select(Subscriber.name).where(Subscriber.email == "alice@example.com")) == "Alice"
    page = admin.get(started.headers["Location"]).text
    assert "3</span> <span data-field=\"rows_noun\">rows</span> read" in page
    assert "Not added back: erased on request</dt><dd data-field=\"erased\">1</dd>" in page
    assert "Left alone: unsubscribed, bounced or complained</dt><dd data-field=\"suppressed\">1</dd>" in page
    assert "Already known, updated</dt><dd data-field=\"updated\">0</dd>" in page
    assert "None: consent was given elsewhere" in page and "Nothing sent" not in page


def test_the_import_report_says_row_for_one(admin):
    page = admin.post(upload(admin, b"email\nnew@example.com\n").headers["Location"] + "/step",
                      data={"csrf_token": token(admin)}, follow_redirects=True).text
    assert ">row</span> read" in page and "Confirmation emails queued" in page


def test_a_file_without_an_email_column_is_refused_at_upload(admin):
    response = upload(admin, b"name,phone\nAnn,123\n")
    assert response.status_code == 400 and "no &#39;email&#39; column" in response.text
    assert admin.get("/admin/subscribers/import/nope").status_code == 404


@pytest.mark.parametrize("query", ["émi", "Émilie", "ÉMILIE D", "zoë"])
def test_a_name_prefix_search_lowers_every_letter_not_only_ascii(admin, query):
    factories.subscribers(2, prefix="e")
    db.session.execute(Subscriber.__table__.update().where(Subscriber.email == "e0@example.com").values(name="Émilie Durand"))
    db.session.execute(Subscriber.__table__.update().where(Subscriber.email == "e1@example.com").values(name="Zoë Archer"))
    db.session.commit()
    page = admin.get("/admin/subscribers", query_string={"q": query}).text
    assert ("e0@example.com" in page) == query.lower().startswith("é") and ("e1@example.com" in page) == (query == "zoë")


def test_a_console_error_is_a_console_page_with_its_menu(admin):
    page = admin.get("/admin/subscribers/999999")
    assert page.status_code == 404 and 'aria-label="Console"' in page.text and "Back to the dashboard" in page.text
    erased = admin.post("/admin/subscribers/999999/erase", data={"csrf_token": token(admin)})
    assert erased.status_code == 404 and 'aria-label="Console"' in erased.text
