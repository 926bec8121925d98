"""Two web hosts with instance folders of their own and a worker with a third share nothing but PostgreSQL and
Redis: a magnet uploaded through one is downloaded through the other, an import started on one shows its progress
on the other, and the worker carries it to its end."""
from __future__ import annotations

import io
import os
import re

import pytest
from sqlalchemy import func, select

from mailer.admin import imports
from mailer.extensions import db
from mailer.links import download_url
from mailer.models import LeadMagnet, Subscriber, UploadPart
from mailer.uploads import store
from tests import factories
from tests.admin_helpers import create_admin, log_in, token
from tests.conftest import make_app, stack_overrides
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def other_host(pg_app, first_host, stack_env, tmp_path):
    """A second web app on the same PostgreSQL and Redis, with an instance folder of its own, signed in."""
    (tmp_path / "b").mkdir()
    app = make_app(tmp_path / "b", **stack_overrides(stack_env))
    assert app.config["INSTANCE_PATH"] != pg_app.config["INSTANCE_PATH"] != stack_env["MAILER_INSTANCE"]
    client = app.test_client()
    log_in(client)
    return app, client


@pytest.fixture
def first_host(pg_app):
    create_admin()
    client = pg_app.test_client()
    log_in(client)
    return client


def test_a_magnet_uploaded_on_one_host_downloads_from_another(pg_app, first_host, other_host, tmp_path, monkeypatch):
    # Several parts, in a body the test client keeps in memory (past 500 KB it spools to a file it never closes).
    monkeypatch.setattr(store, "PART", 64 * 1024)
    pdf = b"%PDF-1.7\n" + os.urandom(300 * 1024)
    form = {"csrf_token": token(first_host, "/admin/magnets/new"), "slug": "salary-guide", "title": "Salary guide",
            "file": (io.BytesIO(pdf), "salary-guide.pdf")}
    assert first_host.post("/admin/magnets/new", data=form, content_type="multipart/form-data").status_code == 302
    assert not any((tmp_path / "magnets").glob("*")) and not any((tmp_path / "b").glob("magnets/*"))
    magnet_id = db.session.scalar(select(LeadMagnet.id).where(LeadMagnet.slug == "salary-guide"))
    reader = db.session.scalar(select(Subscriber.id).where(Subscriber.email == factories.subscribers(1)[0]))
    _, client = other_host
    with client.get(download_url(reader, magnet_id).removeprefix(pg_app.config["BASE_URL"])) as response:
        assert response.status_code == 200 and response.data == pdf
        assert response.headers["Content-Length"] == str(len(pdf))
    assert db.session.scalar(select(func.count()).select_from(UploadPart)) == 5


def test_an_import_started_on_one_host_shows_its_progress_on_another_and_a_worker_finishes_it(
        pg_app, first_host, other_host, worker):
    rows = imports.CHUNK * 2 + 500  # the worker takes three steps, each queueing the next
    lines = "email,name\n" + "".join(f"import{n}@example.com,Reader {n}\n" for n in range(rows))
    token_ = imports.start(db.session, io.BytesIO(lines.encode()), "people.csv", confirmed=True)
    db.session.commit()
    imports.step(db.session, token_, records=2)  # this host imports a part, as the page's script would
    _, client = other_host
    page = client.get(f"/admin/subscribers/import/{token_}").text
    assert "Importing people.csv" in page and '<span data-field="rows">2</span>' in page and "Importing…" in page

    imports.hand_to_worker(token_)  # as the upload does; nothing here steps it again
    done = wait_until(lambda: "Done" in (p := client.get(f"/admin/subscribers/import/{token_}").text) and p,
                      what="the worker finishing the import", timeout=60)
    assert '<span data-field="rows">4,500</span>' in done and '<dd data-field="created">4,500</dd>' in done
    assert len(re.findall(r"import_file\[[^]]+\] succeeded", worker.log())) >= 3  # one step each
    assert db.session.scalar(select(func.count()).select_from(Subscriber).where(Subscriber.status == "confirmed")) == rows
