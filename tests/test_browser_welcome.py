"""The sequence editor in headless Chromium at a laptop and a phone width: reorder with the buttons (no script
needed), write a step in Markdown, see it in the preview; screenshots go to test-artifacts/console/."""
from __future__ import annotations

import shutil

import pytest

from mailer.extensions import db
from tests.admin_helpers import create_admin
from tests.browser import ARTIFACTS
from tests.conftest import make_app
from tests.test_browser_admin import SIZES, log_in, serve

pytestmark = [pytest.mark.browser]
SHOTS = ARTIFACTS / "console"


@pytest.fixture
def studio(tmp_path, sqlite_template):
    root = tmp_path / "studio"
    root.mkdir()
    shutil.copy(sqlite_template, root / "mailer.db")
    app = make_app(root)
    with app.app_context():
        create_admin()
        db.engine.dispose()
    yield from serve(app)


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_the_author_reorders_and_writes_steps_in_the_browser(browser, studio):
    SHOTS.mkdir(parents=True, exist_ok=True)
    base = studio
    for size, viewport in SIZES.items():
        page = browser.new_context(viewport=viewport, java_script_enabled=size == "laptop").new_page()
        log_in(page, base) if size == "laptop" else _log_in_without_script(page, base)
        page.goto(f"{base}/admin/welcome")
        moved = "What comes next from Career Q&A"
        before = page.locator(".step-body strong").all_inner_texts().index(moved)
        page.get_by_role("button", name=f"Move “{moved}” up").click()
        assert page.locator(".step-body strong").all_inner_texts().index(moved) == before - 1
        page.get_by_role("button", name="Add a step").click()
        page.fill("input[name=subject]", f"A note for the {size}")
        page.fill("textarea[name=body]", "A **short** note with [a link](https://blog.example.com/).\n\n- one\n- two")
        page.check("input[name=enabled]")
        page.click("form.stack button[type=submit] >> text=Save")
        page.frame_locator("iframe.mail-frame").get_by_text("short").wait_for()
        assert page.frame_locator("iframe.mail-frame").locator("strong").inner_text() == "short"
        assert "A short note with a link (https://blog.example.com/)." in page.locator("pre.mail-text").text_content()
        assert page.input_value("input[name=to]") == "author@example.com"
        assert no_sideways_scroll(page)
        page.wait_for_timeout(250)
        page.screenshot(path=str(SHOTS / f"welcome-step-{size}.png"), full_page=True)
        page.goto(f"{base}/admin/welcome")
        assert no_sideways_scroll(page)
        page.screenshot(path=str(SHOTS / f"welcome-{size}.png"), full_page=True)
        page.context.close()


def _log_in_without_script(page, base: str) -> None:
    page.goto(f"{base}/admin/login")
    from tests.admin_helpers import EMAIL, PASSWORD
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")
