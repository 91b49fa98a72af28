"""The CLI for people and for scripts (issue 8): --json, whole lines when piped, one
--config anywhere, the small surprises an admin met. Real subprocesses, as in test_cli."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from publisher.app import Publisher
from publisher.config import load_config
from publisher.web.app import create_app
from tests.smtp_server import free_port
from tests.test_cli import REPO, cli, site

__all__ = ["site"]  # the fixture, shared with test_cli


def piped(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Like ``cli`` but with no COLUMNS hint: stdout is a pipe, as for ``| cat``."""
    base = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return subprocess.run(
        [sys.executable, "-m", "publisher.cli", *args],
        cwd=site,
        env={**base, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def newest_mail(site: Path) -> email.message.EmailMessage:
    folder = site / "var" / "outbox" / "new"
    path = max(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_every_listing_prints_one_json_document(site: Path) -> None:
    assert cli(site, "publish").returncode == 0
    documents = {
        "items": ["items", "--json"],
        "ingest": ["ingest", "--json"],
        "status": ["status", "--json"],
        "digest status": ["digest", "status", "--json"],
        "schedules list": ["schedules", "list", "--json"],
        "subscribers show": ["subscribers", "show", "amina.diallo@example.org", "--json"],
        "subscribers pending": ["subscribers", "pending", "--json"],
        "digest preview": ["digest", "preview", "weekly", "--json"],
        "digest requeue-unknown": ["digest", "requeue-unknown", "--dry-run", "--json"],
        "digest send": ["digest", "send", "weekly", "--resend-unknown", "--json"],
    }
    parsed = {}
    for name, args in documents.items():
        result = piped(site, *args)
        assert result.returncode == 0, (name, result.stderr)
        parsed[name] = json.loads(result.stdout)
    assert len(parsed["items"]) == 13 and parsed["items"][0]["published"].endswith("+00:00")
    assert {i["state"] for i in parsed["items"]} == {"shown"}
    assert parsed["ingest"]["sources"]["sample"] == {
        "new": 0,
        "changed": 0,
        "unchanged": 13,
        "duplicates": 0,
        "rejected": 0,
        "left_out": 0,
        "not_modified": False,
        "error": None,
    }
    schedules = {s["name"]: s for s in parsed["schedules list"]}
    weekly = schedules["weekly-digest"]
    assert {"name", "job", "trigger", "timezone", "next_runs", "last_run", "outcome", "paused"} <= set(weekly)
    assert weekly["job"] == "digest" and weekly["next_runs"][0].endswith(("+01:00", "+02:00"))
    assert {row["list_slug"] for row in parsed["digest status"]} == {"weekly", "press"}
    assert parsed["status"]["lists"][0]["subscribers"]["confirmed"] == 3
    assert parsed["subscribers show"]["lists"][0]["status"] == "confirmed"
    assert parsed["subscribers pending"] == [] and parsed["digest preview"]["list"] == "weekly"
    assert parsed["digest requeue-unknown"] == {"dry_run": True, "issues": [], "total": 0}
    assert parsed["digest send"]["requeued_unknown"] == 0 and parsed["digest send"]["created"] is False


def test_piped_tables_and_messages_are_never_cut_or_wrapped(site: Path) -> None:
    config = (site / "config.toml").read_text()
    config += '\n[schedules.every-minute-of-the-working-week]\nevery = "1m"\njob = "ingest"\n'
    (site / "config.toml").write_text(config)
    assert cli(site, "ingest").returncode == 0
    listed = piped(site, "schedules", "list")
    assert "every-minute-of-the-working-week" in listed.stdout and "…" not in listed.stdout
    items = piped(site, "items")
    ids = [line for line in items.stdout.splitlines() if "urn:publisher:sample:" in line]
    assert len(ids) == 13 and "…" not in items.stdout
    assert any("the-covid-19-crisis-a-wake-up-call-to-strengthen-social-protection-systems" in i for i in ids)
    assert all(" CEST " in i or " CET " in i for i in ids)  # the site's zone, named, as the feeds show
    status = piped(site, "digest", "status")
    assert "subject" in status.stdout and "…" not in status.stdout
    published = piped(site, "publish")
    line = next(x for x in published.stdout.splitlines() if x.startswith("import subscribers file -> weekly"))
    assert line.endswith("0 rejected, 0 duplicate(s) merged")  # one line, however long


def test_config_goes_before_or_after_the_command_or_in_the_environment(site: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(site / "config.toml")
    for args, env in (
        (["--config", config, "check"], {}),
        (["check", "--config", config], {}),
        (["check"], {"PUBLISHER_CONFIG": config}),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "publisher.cli", *args],
            cwd=elsewhere,
            env={**os.environ, "PYTHONPATH": str(REPO), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0 and result.stdout.startswith("ok "), (args, result.stderr)
    missing = piped(site, "--config", str(tmp_path / "nope.toml"), "check")
    assert missing.returncode == 2 and "nope.toml: no such file" in missing.stderr


def test_a_piped_import_writes_its_report_and_warnings_and_nothing_else(site: Path, tmp_path: Path) -> None:
    """No progress bar in a pipe: rich would still leave an empty line on stderr."""
    csv = tmp_path / "readers.csv"
    csv.write_text("email,name\nana@example.org,Ana\nnot-an-address,Bo\nANA@example.org,\n", encoding="utf-8")
    result = piped(site, "subscribers", "import", "weekly", str(csv))
    assert result.returncode == 1, result.stderr  # some rows were rejected: a script must see it
    assert result.stdout == (
        "import readers.csv -> weekly: 1 added, 0 updated, 0 unchanged, 0 kept unsubscribed, "
        "1 rejected, 1 duplicate(s) merged\n"
    )
    assert result.stderr.splitlines() == [
        "rejected: readers.csv:3: invalid address 'not-an-address': An email address must have an @-sign.",
        "warning: readers.csv:4: duplicate of line 2 (ANA@example.org); merged",
    ]


def test_a_dry_run_counts_the_subscribers_the_send_will_import_and_writes_nothing(site: Path) -> None:
    assert cli(site, "ingest").returncode == 0
    dry = cli(site, "digest", "send", "weekly", "--dry-run")
    assert dry.returncode == 0 and "13 item(s) to 3 subscriber(s)" in dry.stdout, dry.stdout
    unknown = cli(site, "subscribers", "show", "amina.diallo@example.org")
    assert unknown.returncode == 1 and "no subscriber with this address" in unknown.stderr
    sent = cli(site, "digest", "send", "weekly")
    assert "13 item(s) for 3 subscriber(s)" in sent.stdout


def test_a_test_copy_works_between_issues_is_marked_and_its_links_say_so(site: Path) -> None:
    assert cli(site, "publish").returncode == 0  # this period's issue is out: nothing new
    test = cli(site, "digest", "send", "weekly", "--to", "editor@example.org")
    assert test.returncode == 0 and test.stdout.startswith("test copy to editor@example.org: sent"), test
    message = newest_mail(site)
    assert str(message["To"]) == "editor@example.org"
    assert str(message["Subject"]).startswith("[TEST] Social protection this week: 13 new items")
    link = str(message["List-Unsubscribe"]).strip("<>")
    publisher = Publisher(load_config(site / "config.toml"))
    transport = httpx.ASGITransport(app=create_app(publisher))

    async def visit() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            return await client.get(link), await client.post(link, content=b"List-Unsubscribe=One-Click")

    page, posted = asyncio.run(visit())
    publisher.close()
    assert page.status_code == 200 and "This is a test copy" in page.text
    assert posted.status_code == 200 and "nothing was changed" in posted.text
    rows = json.loads(cli(site, "digest", "status", "--json").stdout)
    assert sum(row["total"] for row in rows) == 4  # the test copy recorded nothing


def test_a_template_that_fails_at_send_time_leaves_no_issue_behind(site: Path) -> None:
    (site / "overrides" / "email").mkdir(parents=True)
    (site / "overrides" / "email" / "digest.html.j2").write_text(
        '{% extends "default:email/digest.html.j2" %}{% block intro %}{{ 1 / 0 }}{% endblock %}'
    )
    (site / "config.toml").write_text(
        (site / "config.toml").read_text() + '\n[templates]\npath = "overrides"\n'
    )
    assert cli(site, "ingest").returncode == 0
    sent = cli(site, "digest", "send", "weekly")
    assert sent.returncode == 1 and "ZeroDivisionError" in sent.stderr
    assert json.loads(cli(site, "digest", "status", "--json").stdout) == []  # no half-made issue


def _wait_for(predicate: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_serve_and_worker_end_on_sigterm_with_exit_0_and_a_last_line(site: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    serve = subprocess.Popen(
        [sys.executable, "-m", "publisher.cli", "serve", "--port", str(port)],
        cwd=site,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: _listening(port))
    serve.send_signal(signal.SIGTERM)
    _out, err = serve.communicate(timeout=30)
    assert serve.returncode == 0 and err.rstrip().endswith("serve: stopped"), err

    worker = subprocess.Popen(
        [sys.executable, "-m", "publisher.cli", "worker", "--interval", "60"],
        cwd=site,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None
    assert "worker: delivering due messages, polling every 60 s" in worker.stderr.readline()
    time.sleep(1)
    worker.send_signal(signal.SIGTERM)
    _out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0 and err.rstrip().endswith("worker: stopped"), err


def test_a_busy_port_is_one_line_naming_the_key(site: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = cli(site, "serve", "--port", str(port))
        assert served.returncode == 1 and served.stdout == ""
        assert served.stderr.strip() == (
            f"error: port {port} on 127.0.0.1 is in use by another program: stop it, or set [web] port "
            "(or --port) to a free one"
        )
        ran = cli(site, "run", "--port", str(port))
        assert ran.returncode == 1 and f"port {port} on 127.0.0.1 is in use" in ran.stderr
        assert "feeds:" not in ran.stderr  # no banner before the error


def test_subscribers_a_list_skips_for_their_language_are_reported_not_silent(site: Path) -> None:
    config = (site / "config.toml").read_text()
    (site / "config.toml").write_text(
        config.replace(
            'categories = ["press-releases"]', 'categories = ["press-releases"]\nlanguages = ["en"]'
        )
    )
    assert cli(site, "ingest").returncode == 0
    added = cli(site, "subscribers", "add", "press", "ana@example.org", "--language", "fr")
    assert added.returncode == 0, added.stderr
    note = "press: 1 subscriber(s) skipped for their language (fr 1); the list's languages: en"
    dry = cli(site, "digest", "send", "press", "--dry-run")
    assert note in dry.stderr and "to 1 subscriber(s)" in dry.stdout  # the desk, from the CSV
    sent = cli(site, "digest", "send", "press")
    assert note in sent.stderr and "for 1 subscriber(s)" in sent.stdout
    status = json.loads(cli(site, "status", "--json").stdout)
    assert {lst["slug"]: lst["unserved"] for lst in status["lists"]}["press"] == {"fr": 1}


def test_digest_send_json_prints_one_json_document_in_every_branch(site: Path) -> None:
    """--dry-run, --to and --resend-unknown printed text (before) the JSON; a script's
    json.loads failed. Now stdout holds one document, whatever the options."""
    assert cli(site, "ingest").returncode == 0
    dry = piped(site, "digest", "send", "weekly", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {
        "dry_run": True,
        "list": "weekly",
        "subject": "Social protection this week: 13 new items",
        "items": 13,
        "omitted": 0,
        "recipients": 3,
        "unserved": {},
    }
    test = piped(site, "digest", "send", "weekly", "--to", "editor@example.org", "--json")
    assert test.returncode == 0, test.stderr
    copy = json.loads(test.stdout)
    assert copy["test_copy"] is True and copy["to"] == "editor@example.org" and copy["status"] == "sent"
    sent = piped(site, "digest", "send", "weekly", "--resend-unknown", "--json")
    assert sent.returncode == 0, sent.stderr
    report = json.loads(sent.stdout)
    assert report["requeued_unknown"] == 0 and report["sent"] == 3 and report["created"] is True
    again = piped(site, "digest", "send", "weekly", "--json")
    assert json.loads(again.stdout)["requeued_unknown"] is None  # not asked for


def test_check_warns_when_a_secrets_variable_is_not_set_and_never_prints_a_value(site: Path) -> None:
    """check said ok with [smtp] username set and its password variable unset; the send failed."""
    config = (site / "config.toml").read_text()
    (site / "config.toml").write_text(config + '\n[smtp]\nusername = "u"\npassword_env = "REV_NOPE_PW"\n')
    unset = piped(site, "check")
    assert unset.returncode == 0 and unset.stdout.startswith("ok config.toml"), unset.stderr
    assert unset.stderr.startswith("warning: smtp.password_env: REV_NOPE_PW is not set (or empty) here")
    set_ = piped(site, "check", env={"REV_NOPE_PW": "s3cret-value"})
    assert set_.returncode == 0 and set_.stderr == ""
    assert "s3cret" not in set_.stdout + unset.stdout + unset.stderr
