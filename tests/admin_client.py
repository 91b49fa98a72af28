"""Signing in to the admin console from tests: over HTTP (httpx) and in Chromium (Playwright).

The console's user is ``alice`` with :data:`PASSWORD`; :func:`admin_hash` is its argon2id
hash (made once per test run: argon2 is slow on purpose). A test enables the console by
putting ``[admin] users = ["alice"]`` in its config and :data:`HASH_ENV` in the
environment (``monkeypatch.setenv(HASH_ENV, admin_hash())``, or ``env=`` for a
``publisher run`` subprocess).
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import httpx

from publisher.app import hash_admin_password

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
