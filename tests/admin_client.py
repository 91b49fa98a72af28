"""Signing in to the admin console from tests: over HTTP (httpx) and in Chromium (Playwright).

The console's user is ``alice`` with :data:`PASSWORD`; :func:`admin_hash` is its argon2id
hash (made once per test run: argon2 is slow on purpose). A test enables the console by
putting ``[admin] users = ["alice"]`` in its config and :data:`HASH_ENV` in the
environment (``monkeypatch.setenv(HASH_ENV, admin_hash())``, or ``env=`` for a
``publisher run`` subprocess).

The browser journeys (tests/test_admin_journey*.py) share the rest: :func:`write_admin_site`
(the embedded default on a port, alice enabled), :func:`publisher_cli`,
:func:`running_daemon` (``publisher run``, up and later stopped cleanly),
:func:`chromium_page` and :func:`shoot` (screenshots at two widths, no sideways scroll).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from publisher.app import hash_admin_password
from tests.test_subscriber_journey import CHROMIUM, REPO, SCREENSHOTS, _wait

if TYPE_CHECKING:
    from playwright.sync_api import Page

USER = "alice"
PASSWORD = "correct horse battery staple"
HASH_ENV = "PUBLISHER_ADMIN_ALICE_HASH"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@functools.cache
def admin_hash() -> str:
    return hash_admin_password(PASSWORD)


def csrf_in(html: str) -> str:
    """The ``csrf_token`` of the first form on a page."""
    found = _CSRF.search(html)
    assert found is not None, "no csrf_token field on the page"
    return found.group(1)


def login_form(client: httpx.Client) -> str:
    """The sign-in form's own (pre-session) CSRF token."""
    page = client.get("/admin/login")
    assert page.status_code == 200, page.text
    return csrf_in(page.text)


def try_sign_in(
    client: httpx.Client, username: str = USER, password: str = PASSWORD, **extra: str
) -> httpx.Response:
    """POST the sign-in form once (no redirect followed)."""
    data = {"csrf_token": login_form(client), "username": username, "password": password, **extra}
    return client.post("/admin/login", data=data, follow_redirects=False)


def sign_in(client: httpx.Client, username: str = USER, password: str = PASSWORD) -> str:
    """Sign ``client`` in (its cookie jar keeps the session); return the session's csrf_token.

    ``client`` must have ``base_url`` set to the server.
    """
    answer = try_sign_in(client, username, password)
    assert answer.status_code == 303, answer.text
    dashboard = client.get("/admin/")
    assert dashboard.status_code == 200, dashboard.text
    return csrf_in(dashboard.text)


def sign_in_browser(page: Page, base: str, username: str = USER, password: str = PASSWORD) -> None:
    """Sign in through the form in Chromium, as a person would, and land on the dashboard."""
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{base}/admin/")


# -- the browser journeys against ``publisher run`` ---------------------------------------------


def write_admin_site(folder: Path, port: int, extra: str = "") -> tuple[str, dict[str, str]]:
    """The embedded default (config, content, subscribers) in ``folder`` on ``port``, alice enabled.

    ``extra`` is appended to config.toml. Returns the site's base URL and the environment
    a ``publisher`` subprocess needs (this checkout on its path, alice's hash).
    """
    for name in ("content", "subscribers"):
        shutil.copytree(REPO / name, folder / name)
    config = (REPO / "config.toml").read_text()
    config = config.replace('base_url = "http://127.0.0.1:8080"', f'base_url = "http://127.0.0.1:{port}"')
    config = config.replace(
        '[web]\nhost = "127.0.0.1"\nport = 8080', f'[web]\nhost = "127.0.0.1"\nport = {port}'
    )
    config = config.replace(
        "[outbox]", '[admin]\nusers = ["alice"]                        # see README\n\n[outbox]'
    )
    (folder / "config.toml").write_text(config + extra)
    return f"http://127.0.0.1:{port}", {**os.environ, "PYTHONPATH": str(REPO), HASH_ENV: admin_hash()}


def publisher_cli(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``publisher ARGS`` in ``folder`` as another process, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "publisher.cli", *args], cwd=folder, env=env, capture_output=True, text=True
    )


def require_chromium() -> None:
    """Skip without Chromium, but fail under CI, where a missing browser is a broken setup."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} missing: `make test` installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} missing")


@contextlib.contextmanager
def running_daemon(folder: Path, env: dict[str, str], base: str) -> Iterator[Path]:
    """``publisher run`` in ``folder``, its web server answering; yields its log file.

    On leaving, the daemon is stopped (SIGTERM) and, unless the body failed, must have
    exited 0: a daemon that crashes on shutdown fails the test.
    """
    log_path = folder / "daemon.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "publisher.cli", "run"], cwd=folder, env=env, stdout=log, stderr=log
        )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return daemon.poll() is not None  # ended: the assert below says why

        _wait("the web server", up)
        assert daemon.poll() is None, log_path.read_text()
        yield log_path
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, log_path.read_text()


@contextlib.contextmanager
def chromium_page() -> Iterator[Page]:
    """A page in headless Debian Chromium (call :func:`require_chromium` first)."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser.new_page()
        browser.close()


def shoot(page: Page, name: str, prepare: Callable[[Page], None] | None = None) -> None:
    """Save ``var/screenshots/admin-NAME-{1200,375}.png``; the page must not scroll sideways.

    ``prepare`` runs at each width before the shot (e.g. to bring a frame into view).
    """
    for width in (1200, 375):
        page.set_viewport_size({"width": width, "height": 900})
        if prepare is not None:
            prepare(page)
        page.screenshot(path=str(SCREENSHOTS / f"admin-{name}-{width}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width, f"{name} scrolls sideways at {width} px"
    page.set_viewport_size({"width": 1200, "height": 900})
