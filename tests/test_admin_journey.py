"""An admin's session in real Chromium against ``publisher run`` (issue 11).

Sign in, read the dashboard, pause a schedule and see it paused in ``publisher schedules
list --json`` (another process, reading the store), edit its cron through the preview and
see config.toml changed with its comments intact, the running daemon reloaded and the new
next fire time; then the jobs and audit pages, and sign out. Every page is saved at 1200
and 375 px wide to ``var/screenshots/admin-*.png`` (not committed) and must not scroll
sideways.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

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
from tests.smtp_server import free_port
from tests.test_subscriber_journey import _wait

COMMENTED = 'cron = "0 9 * * mon"                     # weekdays by name: mon..sun'


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """The embedded default on a free port with the console's user alice enabled."""
    base, env = write_admin_site(tmp_path, free_port())
    assert COMMENTED in (tmp_path / "config.toml").read_text()
    yield tmp_path, base, env


def _schedule(folder: Path, env: dict[str, str], name: str) -> dict[str, object]:
    listed = publisher_cli(folder, env, "schedules", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    found: dict[str, object] = next(s for s in json.loads(listed.stdout) if s["name"] == name)
    return found


@pytest.mark.slow
@pytest.mark.browser
def test_an_admin_signs_in_pauses_and_reschedules_a_digest(site: tuple[Path, str, dict[str, str]]) -> None:
    require_chromium()
    folder, base, env = site
    published = publisher_cli(folder, env, "publish")  # items, feeds, issues: something to show
    assert published.returncode == 0, published.stderr
    with running_daemon(folder, env, base) as log_path, chromium_page() as page:
        page.goto(f"{base}/admin/schedules")
        assert "/admin/login?next=/admin/schedules" in page.url
        shoot(page, "login")
        sign_in_browser(page, base)
        assert page.inner_text("h1") == "Dashboard"
        assert "weekly-digest" in page.inner_text("#main")
        assert "Weekly digest" in page.inner_text("#main")
        shoot(page, "dashboard")

        # Pause: the store says so to every process, the CLI included.
        page.click("nav >> text=Schedules")
        page.click("#pause-weekly-digest")
        page.wait_for_url(re.compile(r"/admin/schedules\?done=paused"))
        assert "Schedule weekly-digest is paused" in page.inner_text(".notice")
        assert _schedule(folder, env, "weekly-digest")["paused"] is True
        shoot(page, "schedules")

        # Edit the cron: a preview first (nothing written), then save.
        before = (folder / "config.toml").read_text()
        page.click("#edit-weekly-digest")
        page.fill("#value", "0 9 * * 1")
        page.click("form[method=get] button[type=submit]")
        assert "numeric weekday" in page.inner_text("#problems")
        assert (folder / "config.toml").read_text() == before
        shoot(page, "schedule-invalid")
        page.fill("#value", "30 7 * * tue")
        page.click("form[method=get] button[type=submit]")
        previewed = page.locator("#next-runs li").all_inner_texts()
        assert len(previewed) == 5 and all("07:30" in t for t in previewed)
        assert (folder / "config.toml").read_text() == before  # a preview writes nothing
        shoot(page, "schedule-preview")
        page.click("#save")
        page.wait_for_url(re.compile(r"/admin/schedules\?done=edited"))
        # Only the cron's value changed: every comment, blank line and column is kept.
        edited = 'cron = "30 7 * * tue"                    # weekdays by name: mon..sun'
        assert (folder / "config.toml").read_text() == before.replace(COMMENTED, edited)
        listed = _schedule(folder, env, "weekly-digest")
        assert listed["trigger"] == "cron 30 7 * * tue" and listed["paused"] is True
        next_run = datetime.fromisoformat(str(listed["next_runs"][0]))  # type: ignore[index]
        shown = next_run.astimezone(ZoneInfo("Europe/Zurich")).strftime("%Y-%m-%d %H:%M")
        assert shown in page.inner_text("#next-weekly-digest")
        assert shown == previewed[0][:16]
        _wait("the daemon's reload", lambda: "configuration reloaded" in log_path.read_text())
        shoot(page, "schedules-edited")

        page.click("#resume-weekly-digest")
        page.wait_for_url(re.compile(r"done=resumed"))
        assert _schedule(folder, env, "weekly-digest")["paused"] is False

        # Run now: the daemon process runs the ingest job; the Jobs page shows its run.
        page.click("#run-ingest")
        page.wait_for_url(re.compile(r"done=started"))
        page.click("nav >> text=Jobs")
        assert page.inner_text("h1") == "Jobs"

        def ran() -> bool:
            page.reload()
            return "ingest" in page.inner_text("#main") and page.locator(".badge.ok").count() > 0

        _wait("the ingest run on the Jobs page", ran)
        assert re.search(r"new=\d+", page.inner_text("#main"))
        shoot(page, "jobs")
        page.click("nav >> text=Audit log")
        audit = page.inner_text("#main")
        for action in ("sign-in", "schedule paused", "schedule edited", "schedule resumed", "run now"):
            assert action in audit
        shoot(page, "audit")

        page.click("button:has-text('Sign out')")
        page.wait_for_url(re.compile(r"/admin/login"))
        page.goto(f"{base}/admin/")
        assert "/admin/login" in page.url
