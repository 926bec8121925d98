"""Uploads kept in the database in parts: read back whole, in pieces and by byte ranges; a magnet's download
streams from them; files from before are brought in by `mailer magnets store-files`; imports take turns under a
lease."""
from __future__ import annotations

import io
import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from mailer.admin import imports
from mailer.extensions import db
from mailer.links import download_url
from mailer.models import Download, LeadMagnet, Subscriber, SubscriberImport, Upload, UploadPart, utcnow
from mailer.uploads import store
from tests import factories

BODY = os.urandom(3500)


@pytest.fixture
def small_parts(monkeypatch):
    monkeypatch.setattr(store, "PART", 1000)


def stored(data: bytes, magnet_id: int | None = None) -> Upload:
    upload = store.save(db.session, io.BytesIO(data), magnet_id=magnet_id)
    db.session.commit()
    return upload


def test_an_upload_is_kept_in_parts_and_read_back_whole_or_from_anywhere(either_app, small_parts):
    upload = stored(BODY)
    parts = db.session.scalars(select(func.length(UploadPart.data)).where(
        UploadPart.upload_id == upload.id).order_by(UploadPart.number)).all()
    assert parts == [1000, 1000, 1000, 500] and upload.size == 3500 and upload.part_size == 1000
    with store.open_upload(db.engine, upload) as f:
        assert f.read() == BODY
        f.seek(990)
        assert f.read(20) == BODY[990:1010]  # across a part's end
        f.seek(-10, io.SEEK_END)
        assert f.read() == BODY[-10:] and f.read() == b""


def test_a_line_that_spans_parts_is_read_as_one(either_app, small_parts):
    text = b"email\n" + b"a" * 1500 + b"@example.com\nb@example.com\n"
    with store.open_upload(db.engine, stored(text)) as f:
        assert [len(line) for line in f] == [6, 1513, 14]


def reader_id() -> int:
    return db.session.scalar(select(Subscriber.id).where(Subscriber.email == factories.subscribers(1)[0]))


def pdf_magnet(data: bytes = BODY) -> tuple[LeadMagnet, str]:
    """An uploaded magnet and a confirmed reader's download path for it."""
    magnet = LeadMagnet(slug="guide", title="Guide", file="", filename="Guide é.pdf", content_type="application/pdf")
    db.session.add(magnet)
    db.session.flush()
    stored(data, magnet.id)
    return magnet, download_url(reader_id(), magnet.id).split("mailer.test", 1)[1]


def test_a_download_streams_the_upload_with_its_length_tag_and_ranges(either_app, small_parts):
    magnet, path = pdf_magnet()
    client = either_app.test_client()
    whole = client.get(path)
    assert whole.status_code == 200 and whole.is_streamed and whole.data == BODY
    assert whole.headers["Content-Length"] == "3500" and whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"] == "application/pdf" and "filename*=UTF-8''Guide%20%C3%A9.pdf" in \
        whole.headers["Content-Disposition"]
    assert whole.headers["ETag"] == f'"{db.session.scalar(select(Upload.sha256))}"'
    part = client.get(path, headers={"Range": "bytes=995-2004"})
    assert part.status_code == 206 and part.data == BODY[995:2005]
    assert part.headers["Content-Range"] == "bytes 995-2004/3500"
    assert client.get(path, headers={"If-None-Match": whole.headers["ETag"]}).status_code == 304
    assert db.session.scalar(select(func.count()).select_from(Download)) == 3


def test_a_magnet_file_left_on_another_hosts_disk_is_a_clear_503_not_a_500(app, client, tmp_path):
    db.session.add(LeadMagnet(slug="old", title="Old", file=str(tmp_path / "gone" / "old.pdf"), filename="old.pdf"))
    db.session.flush()
    magnet_id = db.session.scalar(select(LeadMagnet.id).where(LeadMagnet.slug == "old"))
    response = client.get(download_url(reader_id(), magnet_id).split("mailer.test", 1)[1])
    assert response.status_code == 503 and "not available right now" in response.text
    assert db.session.scalar(select(func.count()).select_from(Download)) == 0


def test_the_shipped_handbook_is_still_served_from_the_package(app, client):
    handbook = db.session.scalar(select(LeadMagnet).where(LeadMagnet.slug == "handbook"))
    with client.get(download_url(reader_id(), handbook.id).split("mailer.test", 1)[1]) as response:
        assert response.status_code == 200 and response.data.startswith(b"%PDF")


def test_store_files_brings_in_what_it_finds_and_names_what_it_does_not(app, runner, tmp_path):
    (tmp_path / "magnets").mkdir()
    (tmp_path / "magnets" / "here-1a2b.pdf").write_bytes(b"%PDF here")
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "moved-3c4d.pdf").write_bytes(b"%PDF moved")
    for slug, path in (("here", tmp_path / "magnets" / "here-1a2b.pdf"), ("moved", "/old/magnets/moved-3c4d.pdf"),
                       ("lost", "/old/magnets/lost-5e6f.pdf")):
        db.session.add(LeadMagnet(slug=slug, title=slug, file=str(path), filename=f"{slug}.pdf"))
    (tmp_path / "imports").mkdir()
    (tmp_path / "imports" / "ab12.json").write_text(json.dumps({"name": "half.csv", "done": False}))
    (tmp_path / "imports" / "cd34.json").write_text(json.dumps({"name": "whole.csv", "done": True}))
    db.session.commit()

    first = runner.invoke(args=["magnets", "store-files"])
    assert first.exit_code == 1
    assert "stored here:" in first.output and "not found moved: /old/magnets/moved-3c4d.pdf" in first.output
    assert "not found lost:" in first.output and "2 file(s) not found on this host" in first.output
    assert "the import of half.csv was left unfinished" in first.output and "whole.csv" not in first.output
    second = runner.invoke(args=["magnets", "store-files", "--from", str(tmp_path / "moved")])
    assert "stored moved:" in second.output and "stored here" not in second.output  # done once, not again
    assert second.exit_code == 1 and "1 file(s) not found" in second.output
    db.session.expire_all()
    files = dict(db.session.execute(select(LeadMagnet.slug, LeadMagnet.file)).all())
    assert files["here"] == files["moved"] == "" and files["lost"] == "/old/magnets/lost-5e6f.pdf"
    assert files["handbook"] == "multigenerational-managers-handbook.pdf"  # shipped: stays a package file
    (tmp_path / "magnets" / "here-1a2b.pdf").unlink()  # served from the database now, not from this disk
    for slug, content in (("here", b"%PDF here"), ("moved", b"%PDF moved")):
        magnet_id = db.session.scalar(select(LeadMagnet.id).where(LeadMagnet.slug == slug))
        with store.open_upload(db.engine, store.newest_for_magnet(db.session, magnet_id)) as f:
            assert f.read() == content


def started_import(lines: int = 5) -> str:
    body = "email\n" + "".join(f"reader{n}@example.com\n" for n in range(lines))
    token = imports.start(db.session, io.BytesIO(body.encode()), "list.csv", confirmed=True)
    db.session.commit()
    return token


def test_an_import_held_by_another_host_is_left_to_it_until_its_lease_ends(either_app):
    token = started_import()
    db.session.execute(update(SubscriberImport).values(busy_until=utcnow() + timedelta(minutes=1)))
    db.session.commit()
    busy = imports.step(db.session, token, records=2)
    assert busy["busy"] and busy["rows"] == 0
    db.session.execute(update(SubscriberImport).values(busy_until=utcnow() - timedelta(seconds=1)))  # it died
    db.session.commit()
    taken = imports.step(db.session, token, records=2)
    assert not taken.get("busy") and taken["rows"] == 2
    assert db.session.scalar(select(SubscriberImport.busy_until)) is None


def test_a_step_that_outlived_its_lease_leaves_the_state_to_the_one_that_took_over(either_app, monkeypatch):
    token = started_import()
    real_run = imports._run

    def slow_run(session, upload, state, records):
        real_run(session, upload, state, records)
        # Meanwhile its lease ran out and another host took the import over.
        session.execute(update(SubscriberImport).values(busy_until=utcnow() + timedelta(minutes=5)))

    monkeypatch.setattr(imports, "_run", slow_run)
    imports.step(db.session, token, records=2)
    assert imports.load(db.session, token)["rows"] == 0  # its counts were not written over the other's


def test_a_finished_import_keeps_its_report_and_lets_its_file_go(either_app):
    token = started_import()
    while not (state := imports.step(db.session, token))["done"]:
        pass
    assert state["created"] == 5 and imports.load(db.session, token)["created"] == 5
    assert db.session.scalar(select(func.count()).select_from(Upload)) == 0
    assert db.session.scalar(select(SubscriberImport.upload_id)) is None


def test_the_page_is_told_busy_while_a_worker_holds_the_import(admin):
    from tests.admin_helpers import token

    data = {"csrf_token": token(admin, "/admin/subscribers/import"), "file": (io.BytesIO(b"email\na@example.com\n"),
                                                                              "list.csv")}
    started = admin.post("/admin/subscribers/import", data=data, content_type="multipart/form-data")
    db.session.execute(update(SubscriberImport).values(busy_until=utcnow() + timedelta(minutes=1)))
    db.session.commit()
    headers = {"Accept": "application/json", "X-CSRFToken": token(admin)}
    busy = admin.post(started.headers["Location"] + "/step", headers=headers).get_json()
    assert busy["busy"] and not busy["done"] and busy["rows"] == 0
    assert "Importing…" in admin.get(started.headers["Location"]).text
