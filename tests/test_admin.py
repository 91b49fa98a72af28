"""The admin console over real HTTP (uvicorn on loopback, httpx): sign-in, sessions, CSRF.

Every test runs the app built by ``create_app`` for a config.toml written to disk, with
the console's user ``alice`` enabled through the environment, on SQLite and PostgreSQL.
The clock is the test's, so idle expiry and lock-outs are checked without waiting.
"""

from __future__ import annotations

import asyncio
import re
import threading
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from starlette.routing import Route

from publisher.app import Publisher
from publisher.checks import check_settings
from publisher.cli import cli
from publisher.config import Settings, load_config
from publisher.daemon import banner
from publisher.errors import ConfigError
from publisher.store import Store
from publisher.store.tables import deliveries
from publisher.web.app import ServedApp, create_app
from tests.admin_client import (
    HASH_ENV,
    PASSWORD,
    USER,
    admin_hash,
    sign_in,
    try_sign_in,
)
from tests.test_web import Server as WebServer

START = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)

CONFIG = """\
# The console test site: comments must survive an edit.
[site]
title = "Console test"
base_url = "{base_url}"
timezone = "Europe/Zurich"
postal_address = "1 Example Street, Geneva"

[storage]
url = "{store_url}"

[feeds]
output_dir = "public"

[[categories]]
slug = "news"
title = "News"
labels = ["News"]

[[sources]]
name = "sample"
type = "directory"
path = "content"

[[sources]]
name = "upstream"
type = "feed"
url = "missing/news.atom"

[[lists]]
slug = "weekly"
name = "Weekly digest"
schedule = "weekly-digest"
sender = "News <news@example.org>"

[admin]
users = ["alice"]                        # hash in PUBLISHER_ADMIN_ALICE_HASH

[schedules.ingest]
every = "15m"                            # s, m, h or d
job = "ingest"

[schedules.weekly-digest]
cron = "0 9 * * mon"                     # weekdays by name: mon..sun
timezone = "Europe/Zurich"
job = "digest"
"""


class Server(WebServer):
    """``publisher serve``'s app (:class:`ServedApp`) under uvicorn on a free loopback port."""

    def __init__(self, publisher: Publisher) -> None:
        super().__init__(publisher, ServedApp(publisher))


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Console:
    publisher: Publisher
    server: Server
    clock: Clock
    config: Path

    def client(self, cookies: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.server.base, follow_redirects=False, cookies=cookies)


def write_config(
    folder: Path, store_url: str, *, base_url: str = "http://127.0.0.1:8080", admin: bool = True
) -> Path:
    text = CONFIG.format(base_url=base_url, store_url=store_url)
    if not admin:
        text = text.replace('users = ["alice"]', "users = []")
    path = folder / "config.toml"
    path.write_text(text)
    (folder / "content").mkdir(exist_ok=True)
    (folder / "content" / "one.md").write_text(
        "---\ntitle: Pensions rise\ndate: 2026-11-20\ncategory: News\n"
        "link: https://www.example.org/news/1\n---\n\nBody\n"
    )
    return path


@pytest.fixture
def console(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    monkeypatch.setenv(HASH_ENV, admin_hash())
    path = write_config(tmp_path, store_url)
    clock = Clock()
    publisher = Publisher(load_config(path), Store(store_url), clock=clock)
    with Server(publisher) as server:
        yield Console(publisher, server, clock, path)
    publisher.close()


def admin_paths(publisher: Publisher) -> list[tuple[str, str]]:
    """(method, path) of every console route but sign-in and the stylesheet, {name} filled."""
    found = []
    for route in create_app(publisher).routes:
        if not isinstance(route, Route) or not route.path.startswith("/admin"):
            continue
        if route.path in ("/admin/login", "/admin/admin.css"):
            continue
        path = route.path.replace("{name}", "weekly-digest")
        path = path.replace("{slug}", "weekly")
        path = path.replace("{id:int}", "1")
        path = path.replace("{upload}", "0123456789abcdef0123456789abcdef")
        assert "{" not in path, f"fill in the parameter of {route.path} here"
        for method in sorted(route.methods or []):
            if method != "HEAD":
                found.append((method, path))
    return found


def test_the_console_has_the_pages_of_issue_11(console: Console) -> None:
    paths = admin_paths(console.publisher)
    for wanted in [
        ("GET", "/admin/"),
        ("GET", "/admin/schedules"),
        ("POST", "/admin/schedules/weekly-digest/pause"),
        ("POST", "/admin/schedules/weekly-digest/resume"),
        ("POST", "/admin/schedules/weekly-digest/run"),
        ("GET", "/admin/schedules/weekly-digest/edit"),
        ("POST", "/admin/schedules/weekly-digest/edit"),
        ("GET", "/admin/jobs"),
        ("GET", "/admin/audit"),
        ("POST", "/admin/logout"),
        ("GET", "/admin/lists"),
        ("GET", "/admin/lists/weekly"),
        ("GET", "/admin/lists/weekly/preview.html"),
        ("POST", "/admin/lists/weekly/test"),
        ("POST", "/admin/lists/weekly/export"),
        ("GET", "/admin/subscribers"),
        ("POST", "/admin/subscribers/add"),
        ("POST", "/admin/subscribers/import"),
        ("GET", "/admin/subscribers/import/0123456789abcdef0123456789abcdef"),
        ("POST", "/admin/subscribers/import/0123456789abcdef0123456789abcdef/commit"),
        ("POST", "/admin/subscribers/import/0123456789abcdef0123456789abcdef/discard"),
        ("GET", "/admin/subscribers/1"),
        ("POST", "/admin/subscribers/1/unsubscribe"),
        ("POST", "/admin/subscribers/1/suppress"),
        ("POST", "/admin/subscribers/1/unsuppress"),
        ("GET", "/admin/subscribers/1/forget"),
        ("POST", "/admin/subscribers/1/forget"),
        ("GET", "/admin/items"),
        ("POST", "/admin/items/hide"),
        ("POST", "/admin/items/unhide"),
    ]:
        assert wanted in paths


def test_every_admin_route_without_a_session_redirects_to_sign_in(console: Console) -> None:
    with console.client() as client:
        for method, path in admin_paths(console.publisher):
            answer = client.request(method, path + "?x=1")
            assert answer.status_code == 303, (method, path, answer.status_code)
            location = answer.headers["location"]
            expected = f"/admin/login?next={path}%3Fx%3D1" if method == "GET" else "/admin/login?next=/admin/"
            assert location == expected, (method, path)
            # A forged or foreign cookie is no session either.
            with console.client({"publisher_admin": "abc.def"}) as forger:
                assert forger.request(method, path).status_code == 303, (method, path)
    assert not console.publisher.schedule_states().get("weekly-digest", None) or not (
        console.publisher.schedule_states()["weekly-digest"].paused
    )


def test_sign_in_lands_where_next_says_and_sets_a_strict_http_only_cookie(console: Console) -> None:
    with console.client() as client:
        answer = try_sign_in(client, next="/admin/jobs?schedule=ingest")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/jobs?schedule=ingest"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/admin" in cookie
        assert "Secure" not in cookie  # base_url is http here
        assert client.get("/admin/jobs").status_code == 200
    entries = console.publisher.audit_log()
    assert [(e.username, e.action, e.client) for e in entries] == [(USER, "sign-in", "127.0.0.1")]


def test_the_cookie_is_secure_when_the_site_is_https(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HASH_ENV, admin_hash())
    path = write_config(tmp_path, store_url, base_url="https://news.example.org")
    publisher = Publisher(load_config(path), Store(store_url))
    with Server(publisher) as server, httpx.Client(base_url=server.base) as client:
        answer = try_sign_in(client)
        assert answer.status_code == 303
        assert "Secure" in answer.headers["set-cookie"]
    publisher.close()


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/admin/",
        "/\\evil.example/admin/",
        "\\\\evil.example",
        "https://evil.example/admin/",
        "javascript:alert(1)",
        "/admin/\t/evil",
        "/\t/evil.example",
        "/admin/\x00",
        "/feeds/all.atom.xml",
        "admin/",
        "///evil.example",
        "/admin/../evil",  # a browser resolves dot segments: this is /evil
        "/admin/%2e%2e/evil",  # and reads %2e as a dot
        "/admin/.%2E/evil",
        "/admin/lists/../../evil?x=1",
        "/admin/%252e%252e/evil",
        "/admin/x%2f..%2f..%2fevil",
    ],
)
def test_next_cannot_lead_off_the_console(console: Console, target: str) -> None:
    with console.client() as client:
        login = client.get("/admin/login", params={"next": target})
        assert target not in login.text or target == "admin/"
        answer = try_sign_in(client, next=target)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/"


def test_next_with_dot_segments_inside_the_console_lands_where_the_browser_would(console: Console) -> None:
    with console.client() as client:
        answer = try_sign_in(client, next="/admin/lists/../jobs?schedule=ingest")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/jobs?schedule=ingest"


def test_a_wrong_pair_gets_the_same_answer_whichever_part_was_wrong(console: Console) -> None:
    def error_of(answer: httpx.Response) -> str:
        found = re.search(r'<p class="error"[^>]*>(.*?)</p>', answer.text)
        assert found is not None
        return found.group(1)

    with console.client() as client:
        wrong_password = try_sign_in(client, USER, "not the password")
        unknown_user = try_sign_in(client, "mallory", PASSWORD)
        empty = try_sign_in(client, "", "")
    assert wrong_password.status_code == unknown_user.status_code == empty.status_code == 401
    assert error_of(wrong_password) == error_of(unknown_user) == error_of(empty)
    assert "set-cookie" not in wrong_password.headers


def test_five_failures_for_a_user_lock_it_out_for_fifteen_minutes(console: Console) -> None:
    with console.client() as client:
        for _ in range(5):
            assert try_sign_in(client, USER, "guess").status_code == 401
        locked = try_sign_in(client, USER, PASSWORD)  # even the right password
        assert locked.status_code == 429
        assert "set-cookie" not in locked.headers
    # The counters are in the store: another process on it sees the lock too.
    other = Publisher(
        console.publisher.settings, Store(console.publisher.settings.storage.url), clock=console.clock
    )
    assert other.admin_sign_in(USER, PASSWORD, client="10.0.0.9").outcome.value == "locked"
    other.close()
    console.clock.now += timedelta(minutes=14)
    with console.client() as client:
        assert try_sign_in(client).status_code == 429
    console.clock.now += timedelta(minutes=1, seconds=1)
    with console.client() as client:
        assert try_sign_in(client).status_code == 303


def test_failures_under_spellings_of_one_user_name_count_for_that_user(console: Console) -> None:
    # The form accepts " Alice " as alice, so its failures must count against alice too;
    # otherwise each spelling would buy five more guesses (each from its own address here).
    spellings = ["alice", " alice", "ALICE ", "\talice", "Alice\n"]
    for n, spelling in enumerate(spellings):
        result = console.publisher.admin_sign_in(spelling, "guess", client=f"10.0.1.{n}")
        assert result.outcome.value == "wrong"
    result = console.publisher.admin_sign_in(USER, PASSWORD, client="10.0.2.1")
    assert result.outcome.value == "locked"


def test_five_failures_from_one_address_lock_it_out_whatever_the_user_name(console: Console) -> None:
    with console.client() as client:
        for n in range(5):
            assert try_sign_in(client, f"user{n}", "guess").status_code == 401
        assert try_sign_in(client).status_code == 429
    # The user itself is not locked: from another address alice still signs in.
    result = console.publisher.admin_sign_in(USER, PASSWORD, client="10.0.0.9")
    assert result.outcome.value == "signed-in"


def test_post_without_or_with_a_wrong_csrf_token_is_403_and_changes_nothing(console: Console) -> None:
    with console.client() as client, console.client() as other:
        token = sign_in(client)
        other_token = sign_in(other)
        assert other_token != token
        audit_before = console.publisher.audit_count()
        config_before = console.config.read_bytes()
        for method, path in admin_paths(console.publisher):
            if method != "POST":
                continue
            data = {"kind": "cron", "value": "0 7 * * tue", "timezone": "", "base_digest": "x"}
            for bad in ({}, {"csrf_token": ""}, {"csrf_token": "forged"}, {"csrf_token": other_token}):
                answer = client.post(path, data={**data, **bad})
                assert answer.status_code == 403, (path, bad)
        assert client.get("/admin/").status_code == 200  # still signed in: nothing was done
        state = console.publisher.schedule_state("weekly-digest")
        assert state is None or not state.paused
        assert console.publisher.audit_count() == audit_before
        assert console.config.read_bytes() == config_before
        assert console.publisher.job_runs() == []
        # The sign-in form has its own token: without it, no sign-in.
        bare = client.post("/admin/login", data={"username": USER, "password": PASSWORD})
        assert bare.status_code == 403


def test_the_cookie_stops_working_after_sign_out(console: Console) -> None:
    with console.client() as client:
        token = sign_in(client)
        copied = dict(client.cookies)
        answer = client.post("/admin/logout", data={"csrf_token": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/login"
    with console.client(copied) as thief:  # the same cookie, replayed after sign-out
        assert thief.get("/admin/").status_code == 303
        replayed = thief.post("/admin/schedules/ingest/pause", data={"csrf_token": token})
        assert replayed.status_code == 303
    assert [e.action for e in console.publisher.audit_log()][:2] == ["sign-out", "sign-in"]


def test_a_session_dies_after_twelve_idle_hours_and_is_rotated_at_sign_in(console: Console) -> None:
    with console.client() as client:
        sign_in(client)
        first = dict(client.cookies)
        console.clock.now += timedelta(hours=11, minutes=59)
        assert client.get("/admin/").status_code == 200  # use pushes the idle expiry back
        console.clock.now += timedelta(hours=11, minutes=59)
        assert client.get("/admin/").status_code == 200
        console.clock.now += timedelta(hours=12, seconds=1)
        assert client.get("/admin/").status_code == 303
        sign_in(client)
        second = dict(client.cookies)
        assert second != first
        sign_in(client)  # signing in again from the same browser ends the previous session
    with console.client(second) as replay:
        assert replay.get("/admin/").status_code == 303


def test_a_session_ends_when_its_user_is_no_longer_an_admin(
    console: Console, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Removing alice from [admin] users (bob stays, so the console is still on) must end
    # her live session at once, not after 12 idle hours, which an active thief never reaches.
    with console.client() as client:
        sign_in(client)
        alices = dict(client.cookies)
    monkeypatch.setenv("PUBLISHER_ADMIN_BOB_HASH", admin_hash())
    console.config.write_text(console.config.read_text().replace('users = ["alice"]', 'users = ["bob"]'))
    settings = load_config(console.config)
    reloaded = Publisher(settings, Store(settings.storage.url), clock=console.clock)
    with Server(reloaded) as server, httpx.Client(base_url=server.base, cookies=alices) as client:
        answer = client.get("/admin/schedules", follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/admin/login")
    reloaded.close()


def test_gets_change_nothing(console: Console) -> None:
    with console.client() as client:
        sign_in(client)
        before = (
            console.publisher.audit_count(),
            console.config.read_bytes(),
            console.publisher.schedule_states(),
        )
        for method, path in admin_paths(console.publisher):
            if method == "GET":
                assert client.get(path).status_code in (200, 303), path
                assert client.head(path).status_code in (200, 303), path
        preview = client.get(
            "/admin/schedules/weekly-digest/edit",
            params={"kind": "cron", "value": "0 7 * * tue", "timezone": ""},
        )
        assert preview.status_code == 200
        after = (
            console.publisher.audit_count(),
            console.config.read_bytes(),
            console.publisher.schedule_states(),
        )
    assert after == before


def test_pause_resume_and_run_now_are_the_cli_operations_and_audited(console: Console) -> None:
    with console.client() as client:
        token = sign_in(client)
        paused = client.post("/admin/schedules/ingest/pause", data={"csrf_token": token})
        assert paused.status_code == 303
        page = client.get(paused.headers["location"])
        assert "Schedule ingest is paused" in page.text
        state = console.publisher.schedule_state("ingest")
        assert state is not None and state.paused
        assert client.post("/admin/schedules/ingest/resume", data={"csrf_token": token}).status_code == 303
        state = console.publisher.schedule_state("ingest")
        assert state is not None and not state.paused
        assert client.post("/admin/schedules/nope/pause", data={"csrf_token": token}).status_code == 404
        assert client.post("/admin/schedules/ingest/run", data={"csrf_token": token}).status_code == 303
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while not [r for r in console.publisher.job_runs() if r.ended]:
            assert datetime.now(UTC) < deadline, "the run did not finish"
        jobs = client.get("/admin/jobs")
        assert "ingest" in jobs.text and "ok" in jobs.text
        audit = client.get("/admin/audit").text
    actions = [(e.action, e.detail) for e in console.publisher.audit_log()]
    assert actions[:3] == [
        ("schedule run now", "ingest"),
        ("schedule resumed", "ingest"),
        ("schedule paused", "ingest"),
    ]
    assert "schedule paused" in audit and "127.0.0.1" in audit


def test_a_trigger_edit_is_previewed_validated_and_written_keeping_comments(console: Console) -> None:
    path = "/admin/schedules/weekly-digest/edit"
    original = console.config.read_text()
    with console.client() as client:
        token = sign_in(client)
        form = client.get(path)
        assert form.status_code == 200 and 'value="0 9 * * mon"' in form.text
        bad = client.get(path, params={"kind": "cron", "value": "0 9 * * 1", "timezone": ""})
        assert bad.status_code == 422
        assert "schedules.weekly-digest.cron" in bad.text and "numeric weekday" in bad.text
        assert 'id="save"' not in bad.text
        bad_zone = client.get(
            path, params={"kind": "cron", "value": "0 9 * * mon", "timezone": "Mars/Olympus"}
        )
        assert bad_zone.status_code == 422 and "unknown time zone" in bad_zone.text
        preview = client.get(
            path, params={"kind": "cron", "value": "30 7 * * tue", "timezone": "America/New_York"}
        )
        assert preview.status_code == 200
        runs = re.findall(r"<li>(\d{4}-\d\d-\d\d \d\d:\d\d [A-Z]+)</li>", preview.text)
        assert runs == [
            "2026-12-01 07:30 EST",
            "2026-12-08 07:30 EST",
            "2026-12-15 07:30 EST",
            "2026-12-22 07:30 EST",
            "2026-12-29 07:30 EST",
        ]
        assert console.config.read_text() == original  # a preview writes nothing
        digest = re.search(r'name="base_digest" value="([0-9a-f]+)"', preview.text)
        assert digest is not None
        save = {
            "csrf_token": token,
            "kind": "cron",
            "value": "30 7 * * tue",
            "timezone": "America/New_York",
            "base_digest": digest.group(1),
        }
        # An invalid value posted by hand is refused the same way, nothing written.
        refused = client.post(path, data={**save, "value": "61 7 * * tue"})
        assert refused.status_code == 422 and console.config.read_text() == original
        saved = client.post(path, data=save)
        assert saved.status_code == 303, saved.text
        # This server (publisher serve) reloaded config.toml: its pages show the new trigger.
        after = client.get(saved.headers["location"])
        assert "this server (publisher serve) reloaded it" in after.text
        assert "cron 30 7 * * tue" in after.text and "America/New_York" in after.text
        # A second save from the same (now stale) preview is refused: the file changed.
        stale = client.post(path, data={**save, "value": "0 8 * * wed"})
        assert stale.status_code == 409 and "changed since the preview" in stale.text
    text = console.config.read_text()
    assert 'cron = "30 7 * * tue"                    # weekdays by name: mon..sun' in text
    assert 'timezone = "America/New_York"' in text
    assert (
        text.replace(
            'cron = "30 7 * * tue"                    #', 'cron = "0 9 * * mon"                     #'
        ).replace("America/New_York", "Europe/Zurich")
        == original
    )
    assert tomllib.loads(text)["schedules"]["weekly-digest"]["cron"] == "30 7 * * tue"
    last = console.publisher.audit_log()[0]
    assert last.action == "schedule edited"
    assert "'0 9 * * mon'" in last.detail and "'30 7 * * tue'" in last.detail


def test_switching_a_schedule_from_every_to_cron_and_back_to_the_site_zone(console: Console) -> None:
    edit = console.publisher.plan_schedule_edit("ingest", "cron", "*/30 * * * *", "")
    assert edit.ok and edit.zone == "Europe/Zurich" and len(edit.next_runs) == 5
    assert 'every = "15m"' not in edit.text and 'cron = "*/30 * * * *"' in edit.text
    saved = console.publisher.save_schedule_edit(
        "ingest", "cron", "*/30 * * * *", "", base_digest=edit.base_digest
    )
    assert saved.changed
    assert load_config(console.config).schedules["ingest"].cron == "*/30 * * * *"
    with pytest.raises(ConfigError, match="changed since the preview"):
        console.publisher.save_schedule_edit("ingest", "every", "1h", "", base_digest=edit.base_digest)


def test_concurrent_saves_from_one_preview_write_exactly_one_edit(console: Console) -> None:
    # Two admins (threads of one server) save different edits of the same preview at once:
    # one is written whole, every other is refused as stale; none is lost unseen.
    edit = console.publisher.plan_schedule_edit("ingest", "every", "20m", "")
    values = [f"{n}m" for n in range(21, 29)]
    start = threading.Barrier(len(values))

    def save(value: str) -> str:
        start.wait()
        try:
            console.publisher.save_schedule_edit("ingest", "every", value, "", base_digest=edit.base_digest)
        except ConfigError as e:
            assert "changed since the preview" in str(e)
            return ""
        return value

    with ThreadPoolExecutor(len(values)) as pool:
        written = [v for v in pool.map(save, values) if v]
    assert len(written) == 1
    assert str(load_config(console.config).schedules["ingest"].every) == written[0]
    assert [p.name for p in console.config.parent.glob(".config.toml.*")] == []


def test_no_admin_configured_answers_404_and_says_how_to_enable(
    tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(HASH_ENV, raising=False)
    for admin in (False, True):  # no user at all; a user but no hash in the environment
        path = write_config(tmp_path, store_url, admin=admin)
        publisher = Publisher(load_config(path), Store(store_url))
        with Server(publisher) as server, httpx.Client(base_url=server.base) as client:
            for p in ("/admin/", "/admin", "/admin/login", "/admin/schedules", "/admin/admin.css"):
                assert client.get(p).status_code == 404, p
            assert (
                client.post("/admin/login", data={"username": USER, "password": PASSWORD}).status_code == 404
            )
        # `publisher run` and `serve` print this line at start.
        line = banner(publisher, START)[-1]
        assert line.startswith("admin console disabled (/admin/ answers 404)")
        assert HASH_ENV in line and "publisher admin hash-password" in line
        publisher.close()
    monkeypatch.setenv(HASH_ENV, admin_hash())
    publisher = Publisher(load_config(path), Store(store_url))
    assert banner(publisher, START)[-1] == "admin console: http://127.0.0.1:8080/admin/ (users: alice)"
    publisher.close()


def test_hash_password_prompts_twice_and_prints_an_argon2id_hash() -> None:
    from argon2 import PasswordHasher

    runner = CliRunner()
    result = runner.invoke(
        cli, ["admin", "hash-password"], input=f"{PASSWORD}\nother\n{PASSWORD}\n{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    printed = result.output.strip().splitlines()[-1]
    assert printed.startswith("$argon2id$")
    assert PasswordHasher().verify(printed, PASSWORD)
    assert PASSWORD not in result.output
    short = runner.invoke(cli, ["admin", "hash-password"], input="short\nshort\n")
    assert short.exit_code == 2 and "12 characters" in short.output


def test_admin_user_names_are_checked_in_config(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match=r"admin.users\[1\]: 'Alice Smith' is not a user name"):
        make_settings(admin={"users": ["Alice Smith"]})
    with pytest.raises(ConfigError, match="listed twice"):
        make_settings(admin={"users": ["bob", "bob"]})


def test_check_warns_about_a_user_without_a_hash_and_refuses_a_wrong_one(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(admin={"users": ["alice", "bob"]})
    monkeypatch.setenv(HASH_ENV, admin_hash())
    monkeypatch.delenv("PUBLISHER_ADMIN_BOB_HASH", raising=False)
    report = check_settings(settings)
    assert [w for w in report.warnings if "admin" in w] == [
        "admin.users: PUBLISHER_ADMIN_BOB_HASH is not set here, so 'bob' cannot sign in to /admin/ from a "
        "process started like this one; set it to the output of `publisher admin hash-password`"
    ]
    assert report.ok
    monkeypatch.setenv("PUBLISHER_ADMIN_BOB_HASH", "plain-text-password")
    assert any(
        "PUBLISHER_ADMIN_BOB_HASH is not an argon2id hash" in e for e in check_settings(settings).errors
    )


def test_the_dashboard_shows_sends_issues_subscribers_rates_and_failed_sources(console: Console) -> None:
    publisher = console.publisher
    report = publisher.ingest()
    assert [f.source for f in report.failed] == ["upstream"]
    publisher.add_subscriber("weekly", "ana@example.org", "Ana")
    publisher.add_subscriber("weekly", "ben@example.org", "Ben")
    sent = asyncio.run(publisher.send_digest("weekly"))
    assert sent.sent == 2
    with console.client() as client:
        sign_in(client)
        page = client.get("/admin/").text
        issues = page[page.index('id="issues"') : page.index('id="sources"')]
        assert "Weekly digest" in issues and ">2</td>" in issues
        sources = page[page.index('id="sources"') :]
        assert "upstream" in sources and "sample" not in sources
        assert "Bounce rate: 0.0% (0 of 2)" in page
        # the 30-day figures of `status`, from the ledger and the bounce reports
        assert "2 mailed, 0 bounced (0.00%), 0 complaints (0.00%)" in " ".join(page.split())
        assert "No digest is being sent." in page and "http-equiv" not in page
        # A delivery back in the queue: the issue is "sending now" and the page refreshes itself.
        with publisher.store.engine.begin() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == select(func.min(deliveries.c.id)).scalar_subquery())
                .values(status="pending")
            )
        page = client.get("/admin/").text
        sending = page[page.index('id="sending"') : page.index('id="schedules"')]
        assert "Weekly digest" in sending
        assert '<meta http-equiv="refresh" content="5">' in page
