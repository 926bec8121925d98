"""Subscribers in bulk: import_subscribers, `mailer subscribers import|export`, bounded memory, PostgreSQL upsert."""
from __future__ import annotations

import csv
import io
import tracemalloc
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailer.extensions import db
from mailer.models import Consent, Delivery, Subscriber
from mailer.outbox import sender as outbox
from mailer.people import importing, roster, subscriptions
from mailer.people.importing import ImportFileError, import_subscribers

MB = 1024 * 1024


# --- helpers ---------------------------------------------------------------------------------------

def run(text: str, confirmed: bool = False, name: str = "list.csv"):
    return import_subscribers(db.session, io.StringIO(text, newline=""), confirmed, name)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def status_of(email: str) -> str | None:
    return db.session.scalar(select(Subscriber.status).where(Subscriber.email == email))


def add(email: str, status: str, name: str | None = None) -> Subscriber:
    sub = Subscriber(email=email, status=status, name=name)
    db.session.add(sub)
    db.session.commit()
    return sub


def consents(email: str) -> list[Consent]:
    return list(db.session.scalars(select(Consent).join(Subscriber).where(Subscriber.email == email)))


def confirmations(email: str) -> list[Delivery]:
    return list(db.session.scalars(select(Delivery).join(Subscriber).where(
        Subscriber.email == email, Delivery.kind == "confirmation")))


MIXED = ("email,name\n"
         "ann@example.com,Ann\n"              # 2
         "not-an-address,Bob\n"               # 3: bad email
         "ANN@Example.com,\n"                 # 4: duplicate of line 2
         "cy@example.com,Cy,extra\n"          # 5: wrong column count
         "\n"                                 # 6: blank, not a row
         "dee@example.com,\"Dee\x01\"\n"      # 7: control character in the name
         "\"eve@example.com\",\"Eve, Jr.\"\n"  # 8: quoted comma
         "fay@example.com\n")                 # 9: one column short


# --- the import function -----------------------------------------------------------------------------

def test_good_bad_and_duplicate_lines_are_counted_by_line_number(app):
    report = run(MIXED, confirmed=True)
    assert (report.rows, report.created, report.updated, report.duplicates, report.skipped) == (7, 2, 0, 1, 4)
    lines = dict(report.bad_lines)
    assert sorted(lines) == [3, 5, 7, 9]
    assert lines[3].startswith("not a valid email: 'not-an-address'")
    assert lines[5] == "expected 2 columns, found 3" and lines[9] == "expected 2 columns, found 1"
    assert lines[7].startswith("bad name:")
    assert db.session.scalars(select(Subscriber.name).order_by(Subscriber.email)).all() == ["Ann", "Eve, Jr."]


def test_bom_semicolons_and_extra_columns(app):
    text = "\ufeffCompany;E-Mail-Opt;Email;Name\nAcme;yes;zoe@example.com;Zoë\nAcme;no;yan@example.com;\n"
    report = run(text, confirmed=True)
    assert (report.created, report.skipped) == (2, 0)
    assert db.session.scalar(select(Subscriber.name).where(Subscriber.email == "zoe@example.com")) == "Zoë"


@pytest.mark.parametrize("text, message", [
    ("", "first line is empty"),
    ("name,address\nAnn,ann@example.com\n", "no 'email' column (it has: name, address)"),
])
def test_a_file_without_an_email_column_is_refused(app, text, message):
    with pytest.raises(ImportFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(text)
    assert count(Subscriber) == 0


def test_reimport_updates_instead_of_duplicating(app):
    run("email\nann@example.com\nbob@example.com\n", confirmed=True)
    report = run("email,name\nann@example.com,Ann\nbob@example.com,\ncy@example.com,Cy\n", confirmed=True)
    assert (report.created, report.updated) == (1, 2)
    assert count(Subscriber) == 3
    names = dict(db.session.execute(select(Subscriber.email, Subscriber.name)).all())
    assert names == {"ann@example.com": "Ann", "bob@example.com": None, "cy@example.com": "Cy"}
    assert len(consents("ann@example.com")) == 1  # already confirmed: no second consent row


def test_confirmed_import_sends_nothing_and_records_consent_given_elsewhere(app):
    add("pat@example.com", "pending")
    report = run("email\nnew@example.com\npat@example.com\n", confirmed=True, name="from-kit.csv")
    assert (report.created, report.updated, report.mails_owed) == (1, 1, 0)
    assert count(Delivery) == 0
    for email in ("new@example.com", "pat@example.com"):
        sub = db.session.scalar(select(Subscriber).where(Subscriber.email == email))
        assert sub.status == "confirmed" and sub.confirmed_at is not None
        assert (sub.welcome_step, sub.welcome_next_at) == (1, None)  # no welcome sequence starts
        [consent] = consents(email)
        assert consent.form == "import" and consent.confirmed_at is not None
        assert "given elsewhere" in consent.consent_text and "from-kit.csv" in consent.consent_text


def test_unconfirmed_import_owes_one_confirmation_per_new_or_pending_address(app):
    add("pat@example.com", "pending")
    add("old@example.com", "confirmed")
    report = run("email\nnew@example.com\npat@example.com\nold@example.com\n")
    assert (report.created, report.updated, report.mails_owed) == (1, 2, 2)
    assert status_of("new@example.com") == "pending" and status_of("old@example.com") == "confirmed"
    assert confirmations("old@example.com") == [] and consents("old@example.com") == []
    [delivery] = confirmations("new@example.com")
    [consent] = consents("new@example.com")
    assert consent.form == "import" and consent.confirmed_at is None and "list.csv" in consent.consent_text
    assert (delivery.dedupe_key, delivery.payload) == (f"import-confirmation:{consent.id}", {"consent_id": consent.id})
    assert run("email\nnew@example.com\n").mails_owed == 0  # importing again the same day asks no one twice
    # The queued row is a real confirmation: it goes out, and its link confirms as any signup does.
    assert outbox.deliver_due(limit=10) == 2 and count(Delivery, Delivery.status == "sent") == 2
    texts = [BytesParser(policy=policy.default).parsebytes(path.read_bytes()).get_body(("plain",)).get_content()
             for path in Path(app.config["OUTBOX_DIR"]).glob("*.eml")]
    assert sum("brought over from our earlier mailing list" in t for t in texts) == 2  # not "you signed up"
    subscriptions.confirm_subscription(db.session, consent.id)
    db.session.commit()
    assert status_of("new@example.com") == "confirmed"


@pytest.mark.parametrize("confirmed", [True, False])
def test_an_import_never_resubscribes_anyone(app, confirmed):
    for status in ("unsubscribed", "bounced", "complained"):
        add(f"{status}@example.com", status)
    report = run("email,name\nunsubscribed@example.com,U\nbounced@example.com,B\ncomplained@example.com,C\n",
                 confirmed=confirmed)
    assert (report.updated, report.suppressed, report.mails_owed) == (0, 3, 0)
    for status in ("unsubscribed", "bounced", "complained"):
        assert status_of(f"{status}@example.com") == status
    assert db.session.scalars(select(Subscriber.name)).all() == [None, None, None]  # their records are not touched
    assert count(Consent) == 0 and count(Delivery) == 0


def unsubscribed_alice_and_erased_bob() -> str:
    """A list where alice unsubscribed and bob was erased; the file that brings both back, with someone new."""
    from mailer.people.privacy import erase_subscriber

    add("alice@example.com", "unsubscribed", name="Alice")
    erase_subscriber(db.session, add("bob@example.org", "confirmed", name="Bob"))
    db.session.commit()
    return "email,name\nbob@example.org,Bob\nalice@example.com,Alice Again\nnewperson@example.com,New\n"


def test_each_row_is_counted_once_and_an_unsubscribed_record_is_left_as_it_was(app):
    text = unsubscribed_alice_and_erased_bob()
    alice_before = db.session.execute(select(Subscriber.name, Subscriber.updated_at)
                                      .where(Subscriber.email == "alice@example.com")).one()
    report = run(text, confirmed=True)
    assert (report.rows, report.created, report.updated, report.suppressed, report.erased) == (3, 1, 0, 1, 1)
    assert report.rows == (report.created + report.updated + report.duplicates + report.suppressed + report.erased
                           + report.skipped)
    assert db.session.execute(select(Subscriber.name, Subscriber.updated_at)
                              .where(Subscriber.email == "alice@example.com")).one() == alice_before
    assert status_of("alice@example.com") == "unsubscribed" and status_of("bob@example.org") is None
    assert count(Consent) == 1  # newperson's


def test_a_status_column_keeps_unsubscribed_and_unconfirmed_people_out(app):
    text = "email,status\nin@example.com,confirmed\nout@example.com,unsubscribed\nwait@example.com,pending\n"
    report = run(text, confirmed=True)
    assert report.created == 1 and [line for line, _ in report.bad_lines] == [3, 4]
    assert status_of("out@example.com") is None and status_of("wait@example.com") is None


@pytest.mark.parametrize("ending", ["\n", ""])
def test_a_quote_never_closed_stops_the_import_at_its_line_and_keeps_the_rows_before(app, ending):
    text = 'email,name\nann@example.com,Ann\nq1@example.com,"open quote\nq2@example.com,ok' + ending
    with pytest.raises(importing.ImportStopped, match=r'^Line 3 opens a quote \("\) that is never closed') as stop:
        run(text, confirmed=True)
    assert "every line after it" in str(stop.value) and "none of them was imported" in str(stop.value)
    assert (stop.value.report.rows, stop.value.report.created, stop.value.report.skipped) == (1, 1, 0)
    assert db.session.scalars(select(Subscriber.email)).all() == ["ann@example.com"]


def test_quotes_that_close_even_across_lines_or_stand_inside_a_cell_are_read_as_before(app):
    report = run('email,name\na@example.com,"Ann ""A"" Lee"\nb@example.com,5" Bob\nc@example.com,"Cy\nJr"\n',
                 confirmed=True)
    assert (report.rows, report.created, [line for line, _ in report.bad_lines]) == (3, 2, [4])
    assert db.session.scalars(select(Subscriber.name).order_by(Subscriber.email)).all() == ['Ann "A" Lee', '5" Bob']


def test_a_header_with_a_quote_never_closed_is_refused(app):
    with pytest.raises(ImportFileError, match="^Line 1 opens a quote"):
        run('email,"name\nann@example.com,Ann\n')
    assert count(Subscriber) == 0


def test_batches_report_progress_and_duplicates_across_batches_count_once(app, monkeypatch):
    monkeypatch.setattr(importing, "BATCH", 2)
    seen = []
    text = "email\n" + "".join(f"p{n}@example.com\n" for n in range(5)) + "P1@example.com\np4@example.com\n"
    report = import_subscribers(db.session, io.StringIO(text), False, "x.csv", on_progress=seen.append)
    assert seen == [2, 4, 6, 7]  # rows read when each batch was saved; the last one partly full
    assert (report.rows, report.created, report.updated, report.duplicates, report.mails_owed) == (7, 5, 0, 2, 5)
    assert count(Consent) == 5 and count(Delivery) == 5


def test_only_the_first_bad_lines_are_kept(app, monkeypatch):
    monkeypatch.setattr(importing, "KEEP_BAD_LINES", 3)
    report = run("email\n" + "nope\n" * 10)
    assert report.skipped == 10 and [line for line, _ in report.bad_lines] == [2, 3, 4]


# --- the command line --------------------------------------------------------------------------------

def test_cli_import_shows_progress_a_summary_and_the_bad_lines(app, runner, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(MIXED, encoding="utf-8")
    result = runner.invoke(args=["subscribers", "import", str(path), "--confirmed"])
    assert result.exit_code == 0, result.output
    assert "Importing list.csv" in result.output
    assert ("Read 7 rows: 2 added, 0 already known, 1 duplicate, 4 bad lines skipped; "
            "nothing sent (consent recorded as given elsewhere).") in result.output
    assert "line 3: not a valid email: 'not-an-address'" in result.output
    assert "line 9: expected 2 columns, found 1" in result.output
    assert count(Subscriber) == 2 and count(Delivery) == 0


def test_cli_import_without_confirmed_queues_confirmations(app, runner, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email\na@example.com\nb@example.com\n", encoding="utf-8")
    result = runner.invoke(args=["subscribers", "import", str(path)])
    assert result.exit_code == 0 and "2 confirmation emails queued" in result.output
    assert count(Delivery, Delivery.kind == "confirmation") == 2


@pytest.mark.parametrize("content, message", [
    (b"name\nAnn\n", "no 'email' column"),
    (b"email\nann@example.com\n\xff\xfe@example.com\n", "Line 3 is not UTF-8 text"),
    (None, "Cannot read"),
])
def test_cli_import_of_an_unusable_file_exits_1(app, runner, tmp_path, content, message):
    path = tmp_path / "list.csv"
    if content is not None:
        path.write_bytes(content)
    result = runner.invoke(args=["subscribers", "import", str(path)])
    assert result.exit_code == 1 and message in result.output


def test_cli_import_that_stops_at_a_line_keeps_and_reports_the_rows_before_it(app, runner, tmp_path):
    path = tmp_path / "list.csv"
    path.write_bytes(b"email\nann@example.com\nnope\n\xff\xfe@example.com\nbob@example.com\n")
    result = runner.invoke(args=["subscribers", "import", str(path), "--confirmed"])
    assert result.exit_code == 1
    assert "Read 2 rows: 1 added" in result.output and "line 3: not a valid email" in result.output
    assert "Line 4 is not UTF-8 text" in result.output and "the lines before it are saved" in result.output
    assert db.session.scalars(select(Subscriber.email)).all() == ["ann@example.com"]


def test_cli_import_names_the_line_of_a_quote_never_closed(app, runner, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text('email,name\nq1@example.com,"open quote\nq2@example.com,ok\n', encoding="utf-8")
    result = runner.invoke(args=["subscribers", "import", str(path), "--confirmed"])
    assert result.exit_code == 1 and "Line 2 opens a quote" in result.output
    assert "bad name" not in result.output and count(Subscriber) == 0


def test_cli_import_counts_left_alone_and_erased_rows_apart_from_the_known_ones(app, runner, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(unsubscribed_alice_and_erased_bob(), encoding="utf-8")
    result = runner.invoke(args=["subscribers", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert ("Read 3 rows: 1 added, 0 already known, 1 left alone (unsubscribed, bounced or complained), "
            "1 not added back (erased on request earlier), 0 duplicates, 0 bad lines skipped; "
            "1 confirmation email queued.") in result.output
    path.write_text("email\nnewperson@example.com\n", encoding="utf-8")
    again = runner.invoke(args=["subscribers", "import", str(path)])
    assert "Read 1 row: 0 added, 1 already known, 0 duplicates, 0 bad lines skipped; 0 confirmation emails" in again.output


def test_export_streams_in_batches_filters_and_round_trips(app, runner, monkeypatch):
    from mailer.cli import subscribers as subscribers_cli

    monkeypatch.setattr(subscribers_cli, "EXPORT_BATCH", 2)
    run("email,name\nann@example.com,Ann\nbob@example.com,\"Bob, Jr.\"\ncy@example.com,Cy\n", confirmed=True)
    add("gone@example.com", "unsubscribed", "Gone")
    add("wait@example.com", "pending")
    result = runner.invoke(args=["subscribers", "export"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == list(roster.FIELDS)
    assert [r["email"] for r in rows] == ["ann@example.com", "bob@example.com", "cy@example.com",
                                          "gone@example.com", "wait@example.com"]
    assert rows[1]["name"] == "Bob, Jr." and rows[3]["status"] == "unsubscribed" and rows[4]["confirmed_at"] == ""
    assert rows[0]["created_at"].endswith("Z") and rows[0]["confirmed_at"]
    confirmed_only = runner.invoke(args=["subscribers", "export", "--status", "confirmed"]).stdout
    assert confirmed_only.count("\n") == 4

    db.session.execute(Subscriber.__table__.delete())
    db.session.commit()
    report = run(result.stdout, confirmed=True, name="export.csv")
    # Read back in, the unsubscribed and the never-confirmed stay out.
    assert (report.created, report.skipped) == (3, 2)
    again = list(csv.DictReader(io.StringIO(runner.invoke(args=["subscribers", "export"]).stdout)))
    before = list(csv.DictReader(io.StringIO(confirmed_only)))
    assert [(r["email"], r["name"], r["status"]) for r in again] == [(r["email"], r["name"], r["status"]) for r in before]


def test_cells_a_spreadsheet_would_run_are_exported_as_text_and_imported_as_they_were(app, runner):
    names = ['=HYPERLINK("http://evil.example/","Click")', "+1 555 0100", "-Dash", "@handle", "Ann 'Nan'", "'quoted",
             "'=1+1"]
    for n, name in enumerate(names):
        add(f"p{n}@example.com", "confirmed", name)
    add("=cmd|'/ccalc'!a0@example.com", "confirmed", "DDE")  # a valid address, and a formula
    exported = runner.invoke(args=["subscribers", "export"]).stdout
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["name"] for r in rows[:len(names)]] == [
        '\'=HYPERLINK("http://evil.example/","Click")', "'+1 555 0100", "'-Dash", "'@handle", "Ann 'Nan'", "'quoted",
        "''=1+1"]
    assert rows[-1]["email"] == "'=cmd|'/ccalc'!a0@example.com"

    db.session.execute(Subscriber.__table__.delete())
    db.session.commit()
    report = run(exported, confirmed=True, name="export.csv")
    assert report.skipped == 0
    stored = dict(db.session.execute(select(Subscriber.email, Subscriber.name)).all())
    assert [stored[f"p{n}@example.com"] for n in range(len(names))] == names
    assert stored["=cmd|'/ccalc'!a0@example.com"] == "DDE"


# --- memory ----------------------------------------------------------------------------------------

def cheap_normalise(raw: str) -> str:
    # email_validator spends ~100 µs of CPU a row and keeps nothing; under tracemalloc that alone would take minutes.
    return raw.strip().lower()


def write_rows(path, start: int, stop: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write("email,name\n")
        f.writelines(f"reader{n}@example.com,Reader Number {n}\n" for n in range(start, stop))


def peak_while(action) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def import_file(path) -> importing.ImportReport:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return import_subscribers(db.session, f, True, path.name)


def test_a_200k_row_file_is_read_in_bounded_memory(app, tmp_path, monkeypatch):
    """Every row through the reader, the checks and the batching; the batches are counted, not written (see below)."""
    monkeypatch.setattr(importing, "normalise_email", cheap_normalise)
    batches = []
    monkeypatch.setattr(importing, "add_subscribers",
                        lambda session, people, **_: batches.append(len(people)) or roster.Added(created=len(people)))
    path = tmp_path / "big.csv"
    write_rows(path, 0, 200_000)
    report = None

    def go():
        nonlocal report
        report = import_file(path)

    peak = peak_while(go)
    assert report.created == 200_000 and max(batches) == importing.BATCH
    # All rows as lists would be ~40 MB, the lines alone ~17 MB, a set of every address ~20 MB.
    assert peak < 8 * MB, f"peak traced memory {peak / MB:.1f} MB"


def test_memory_on_sqlite_does_not_grow_with_the_number_of_rows(app, tmp_path, monkeypatch):
    """Real upserts, consent rows and commits: six times the rows must not need more memory."""
    monkeypatch.setattr(importing, "normalise_email", cheap_normalise)
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    write_rows(small, 0, 2_000)
    write_rows(large, 2_000, 14_000)
    small_peak = peak_while(lambda: import_file(small))
    large_peak = peak_while(lambda: import_file(large))
    assert count(Subscriber) == 14_000 and count(Consent) == 14_000
    # Holding the 12,000 rows would add ~2.5 MB; holding their ORM objects far more.
    assert large_peak < small_peak + MB, f"{small_peak / MB:.1f} MB for 2,000 rows, {large_peak / MB:.1f} MB for 12,000"


# --- PostgreSQL --------------------------------------------------------------------------------------

def test_import_upsert_on_postgresql(pg_app, monkeypatch):
    monkeypatch.setattr(importing, "BATCH", 2)
    add("gone@example.com", "unsubscribed")
    add("pat@example.com", "pending")
    text = "email,name\nann@example.com,Ann\npat@example.com,Pat\ngone@example.com,G\nANN@example.com,\nbad,\n"
    report = run(text, confirmed=True)
    assert (report.created, report.updated, report.suppressed, report.duplicates, report.skipped) == (1, 1, 1, 1, 1)
    assert status_of("pat@example.com") == "confirmed" and status_of("gone@example.com") == "unsubscribed"
    assert db.session.scalar(select(Subscriber.name).where(Subscriber.email == "gone@example.com")) is None
    again = run(text, confirmed=True)
    assert (again.created, again.updated, again.suppressed) == (0, 2, 1)
    assert count(Subscriber) == 3 and count(Consent) == 2 and count(Delivery) == 0
    report = run("email\nnew@example.com\n")
    assert report.mails_owed == 1 and len(confirmations("new@example.com")) == 1
