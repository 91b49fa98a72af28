"""An admin's Lists, Subscribers and Items work in real Chromium against ``publisher run`` (issue 11).

Beside tests/test_admin_journey.py (schedules, jobs, audit): preview the French issue
(the HTML in its sandboxed frame and the text part), send a test copy and read it from
the aiosmtpd relay, upload a CSV with two bad rows and see them listed before anything
is imported, commit, open an imported subscriber, and hide an item and see it gone
from the Atom feed the daemon serves. Every page is saved at 1200 and 375 px wide to
``var/screenshots/admin-*.png`` and must not scroll sideways.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from email.header import decode_header, make_header
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.admin_client import (
    chromium_page,
    publisher_cli,
    require_chromium,
    running_daemon,
    shoot,
    sign_in_browser,
    write_admin_site,
)
from tests.smtp_server import SmtpSink, free_port
from tests.test_subscriber_journey import _wait

if TYPE_CHECKING:
    from playwright.sync_api import Page

BAD_ROWS_CSV = (
    "email,name,language\n"
    "nina@example.org,Nina,fr\n"
    "not-an-address,Broken,en\n"
    "omar@example.org,Omar,es\n"
    ",Nobody,en\n"
    "quentin@example.org,Quentin,en\n"
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str, dict[str, str], SmtpSink]]:
    """The embedded default on a free port, mailing through aiosmtpd, console user alice enabled."""
    with SmtpSink() as sink:
        smtp = f'\n[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\ntimeout = 5\n'
        base, env = write_admin_site(tmp_path, free_port(), smtp)
        yield tmp_path, base, env, sink


def _frame_in_view(page: Page) -> None:
    """Scroll the preview frame (if any) into view and check it shows the French issue.

    Chromium paints an out-of-process (sandboxed) frame only once it has been in view;
    a full-page shot alone would show it blank below the fold.
    """
    if page.locator("#preview-html").count():
        page.locator("#preview-html").scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        assert "Se désabonner" in page.frame_locator("#preview-html").locator("body").inner_text()


def _shoot(page: Page, name: str) -> None:
    shoot(page, name, _frame_in_view)


@pytest.mark.slow
@pytest.mark.browser
def test_an_admin_previews_tests_imports_and_hides(
    site: tuple[Path, str, dict[str, str], SmtpSink],
) -> None:
    require_chromium()
    folder, base, env, sink = site
    published = publisher_cli(folder, env, "publish")  # items, feeds, a first issue per list
    assert published.returncode == 0, published.stderr
    sent_by_publish = len(sink.accepted())
    with running_daemon(folder, env, base), chromium_page() as page:
        sign_in_browser(page, base)

        # Lists: the weekly list's issues, then its next issue in French.
        page.click("nav >> text=Lists")
        assert page.inner_text("h1") == "Lists and digests"
        _shoot(page, "lists")
        page.click("#list-weekly a")
        assert page.inner_text("h1") == "Weekly digest"
        assert page.locator("#issues + .table tbody tr").count() >= 1
        page.select_option("#language", "fr")
        page.click("#show-preview")
        page.wait_for_url(re.compile(r"/admin/lists/weekly\?language=fr"))
        framed = page.frame_locator("#preview-html").locator("body")
        assert "Se désabonner" in framed.inner_text()
        assert "Se désabonner" in page.inner_text("#preview-text")
        assert re.search(r"[\d,]+ bytes", page.inner_text("#preview-size"))
        _shoot(page, "list-preview-fr")

        # A test copy in French, read from the relay.
        page.fill("#address", "editor@example.org")
        page.click("#send-test")
        page.wait_for_url(re.compile(r"done=test-sent"))
        assert "A test copy of weekly was sent." in page.inner_text(".notice")

        def arrived() -> bool:
            return any(r.rcpt_tos == ["editor@example.org"] for r in sink.accepted()[sent_by_publish:])

        _wait("the test copy at the relay", arrived)
        (copy,) = [r for r in sink.accepted()[sent_by_publish:] if r.rcpt_tos == ["editor@example.org"]]
        subject = str(make_header(decode_header(copy.message["Subject"])))
        assert subject.startswith("[TEST] ")
        text = next(
            part.get_payload(decode=True).decode()  # type: ignore[union-attr]
            for part in copy.message.walk()
            if part.get_content_type() == "text/plain"
        )
        assert "Se désabonner" in text

        # Import: two bad rows listed with their lines before anything is written.
        upload = folder / "new-readers.csv"
        upload.write_text(BAD_ROWS_CSV)
        page.click("nav >> text=Subscribers")
        _shoot(page, "subscribers")
        page.select_option("#import-list", "weekly")
        page.set_input_files("#import-file", str(upload))
        page.click("#upload")
        page.wait_for_url(re.compile(r"/admin/subscribers/import/[0-9a-f]{32}$"))
        assert "Import 5 rows" in page.inner_text("#import-summary")
        assert "2 rejected" in page.inner_text("#import-summary")
        lines = page.locator("#rejected td[data-label=Line]").all_inner_texts()
        assert lines == ["new-readers.csv:3", "new-readers.csv:5"]
        assert publisher_cli(folder, env, "subscribers", "show", "nina@example.org").returncode != 0
        _shoot(page, "import-check")
        page.click("#commit")
        page.wait_for_url(re.compile(r"done=import-done"))
        assert "3 added" in page.inner_text(".notice")
        shown = publisher_cli(folder, env, "subscribers", "show", "nina@example.org")
        assert shown.returncode == 0 and "weekly" in shown.stdout

        page.fill("#q", "nina")
        page.click("#search")
        page.click("text=nina@example.org")
        assert page.inner_text("h1") == "nina@example.org"
        assert "import" in page.inner_text("#subscriptions")
        _shoot(page, "subscriber")

        # Items: hide one and see it gone from the Atom feed the daemon serves.
        atom = httpx.get(f"{base}/feeds/all.atom.xml").text
        page.click("nav >> text=Items")
        first = page.locator("#items tbody tr").first
        title = first.locator("td[data-label=Title] a").inner_text()
        assert html.escape(title, quote=False) in atom
        _shoot(page, "items")
        first.locator("button:has-text('Hide')").click()
        page.wait_for_url(re.compile(r"done=item-hidden"))
        assert html.escape(title, quote=False) not in httpx.get(f"{base}/feeds/all.atom.xml").text
        assert "hidden" in page.locator("#items tbody tr").first.inner_text()
        _shoot(page, "items-hidden")

        page.click("nav >> text=Audit log")
        audit = page.inner_text("#main")
        for action in ("test copy sent", "import uploaded", "subscribers imported", "item hidden"):
            assert action in audit
