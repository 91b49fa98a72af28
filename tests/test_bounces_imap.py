"""The IMAP bounce mailbox against a real IMAP server: Dovecot on loopback (tests/imap_server.py).

Reports are put in with IMAP APPEND, as a mail server's delivery or another client would;
what the publisher did is read back from the server's folders and flags.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import publisher.bounces.imap as imap_module
from publisher.app import Publisher
from publisher.bounces.imap import ImapMailbox
from publisher.config import ImapMailboxConfig, load_config
from publisher.errors import ConfigError, ReportError
from publisher.models import ReportOutcome, SubscriptionStatus
from publisher.subscriptions import add
from tests.imap_server import PASSWORD, USERNAME, Dovecot
from tests.smtp_server import SmtpSink, TlsFiles
from tests.test_digests import item

PASSWORD_ENV = "PUBLISHER_TEST_IMAP_PASSWORD"
REPO = Path(__file__).parent.parent
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
ANN, BOB = "ann@example.org", "bob@example.org"


def report(n: int, body: str = "mailbox unavailable") -> bytes:
    return (
        f"From: MAILER-DAEMON@mx.example.net\r\nTo: bounces+x@example.org\r\n"
        f"Message-ID: <report-{n}@mx.example.net>\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"\r\n{body}\r\n"
    ).encode()


def config(server: Dovecot, **overrides: object) -> ImapMailboxConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": server.port,
        "username": USERNAME,
        "password_env": PASSWORD_ENV,
        "security": "none",
    }
    return ImapMailboxConfig.model_validate(values | overrides)


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.fixture(params=[True, False], ids=["move", "copy-expunge"])
def server(request: pytest.FixtureRequest) -> Iterator[Dovecot]:
    """Dovecot advertising MOVE, and the same without it (COPY + \\Deleted + EXPUNGE)."""
    with Dovecot(move=request.param) as s:
        yield s


def message_ids(server: Dovecot) -> dict[str, list[tuple[bytes, frozenset[bytes]]]]:
    """Folder -> (Message-ID, flags without \\Recent), leaving out empty folders."""
    return {
        name: [(mid, flags - {b"\\Recent"}) for mid, flags in messages]
        for name, messages in server.folders().items()
        if messages
    }


def test_unseen_reports_are_read_unchanged_and_settled_into_their_folders(server: Dovecot) -> None:
    for n in (1, 2, 3):
        server.append(report(n))
    server.append(report(4), seen=True)  # read by a person already: not ours to take
    mailbox = ImapMailbox(config(server))
    try:
        fetched = list(mailbox.fetch_new())
        assert [m.raw for m in fetched] == [report(1), report(2), report(3)]
        # Reading changed nothing on the server: a crash now loses no report.
        assert message_ids(server) == {
            "INBOX": [
                (b"<report-1@mx.example.net>", frozenset()),
                (b"<report-2@mx.example.net>", frozenset()),
                (b"<report-3@mx.example.net>", frozenset()),
                (b"<report-4@mx.example.net>", frozenset({b"\\Seen"})),
            ]
        }
        outcomes = [ReportOutcome.PROCESSED, ReportOutcome.UNMATCHED, ReportOutcome.UNPARSED]
        for message, outcome in zip(fetched, outcomes, strict=True):
            mailbox.settle(message.key, outcome)
        assert list(mailbox.fetch_new()) == []
    finally:
        mailbox.close()
    assert message_ids(server) == {
        "INBOX": [(b"<report-4@mx.example.net>", frozenset({b"\\Seen"}))],
        "Processed": [(b"<report-1@mx.example.net>", frozenset({b"\\Seen"}))],
        "Unmatched": [(b"<report-2@mx.example.net>", frozenset())],
        "Unparsed": [(b"<report-3@mx.example.net>", frozenset())],
    }


def test_existing_and_custom_folders_are_used(dovecot: Dovecot) -> None:
    dovecot.append(report(1), folder="Bounces")
    dovecot.append(report(9), folder="Done")  # already there: used as it is
    dovecot.append(report(2))  # INBOX is not the configured folder: left alone
    mailbox = ImapMailbox(config(dovecot, folder="Bounces", processed_folder="Done"))
    try:
        (message,) = mailbox.fetch_new()
        mailbox.settle(message.key, ReportOutcome.PROCESSED)
    finally:
        mailbox.close()
    assert message_ids(dovecot) == {
        "INBOX": [(b"<report-2@mx.example.net>", frozenset())],
        "Done": [
            (b"<report-1@mx.example.net>", frozenset({b"\\Seen"})),
            (b"<report-9@mx.example.net>", frozenset()),
        ],
    }


def test_a_report_settled_into_the_folder_it_is_read_from_is_not_read_again(dovecot: Dovecot) -> None:
    dovecot.append(report(1))
    mailbox = ImapMailbox(config(dovecot, unmatched_folder="INBOX"))
    try:
        (message,) = mailbox.fetch_new()
        mailbox.settle(message.key, ReportOutcome.UNMATCHED)
        assert list(mailbox.fetch_new()) == []
    finally:
        mailbox.close()
    assert message_ids(dovecot) == {"INBOX": [(b"<report-1@mx.example.net>", frozenset({b"\\Seen"}))]}


def test_an_oversized_report_is_read_only_past_the_limit(
    dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imap_module, "MAX_REPORT_BYTES", 500)
    big = report(1, "x" * 5000)
    dovecot.append(big)
    mailbox = ImapMailbox(config(dovecot))
    try:
        (message,) = mailbox.fetch_new()
    finally:
        mailbox.close()
    # One byte more than the limit: enough for the processing to see it is too large.
    assert message.raw == big[:501]


def test_wrong_password_is_one_clear_line(dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    dovecot.append(report(1))
    mailbox = ImapMailbox(config(dovecot))
    with pytest.raises(ReportError) as caught:
        list(mailbox.fetch_new())
    mailbox.close()
    text = str(caught.value)
    assert "\n" not in text
    assert f"IMAP mailbox {USERNAME}@127.0.0.1:{dovecot.port}: login refused" in text
    assert PASSWORD_ENV in text and "not-the-password" not in text
    assert message_ids(dovecot) == {"INBOX": [(b"<report-1@mx.example.net>", frozenset())]}


def test_a_missing_password_variable_names_the_key(dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV)
    with pytest.raises(ConfigError, match=f"imap.password_env: the environment variable {PASSWORD_ENV}"):
        list(ImapMailbox(config(dovecot)).fetch_new())


@pytest.fixture
def tls_dovecot(tls_files: TlsFiles) -> Iterator[Dovecot]:
    with Dovecot(tls_files) as server:
        yield server


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_verify_the_server(tls_dovecot: Dovecot, tls_files: TlsFiles, security: str) -> None:
    tls_dovecot.append(report(1))
    port = tls_dovecot.tls_port if security == "tls" else tls_dovecot.port
    cfg = config(tls_dovecot, security=security, port=port)
    mailbox = ImapMailbox(cfg, tls_context=tls_files.client_context())
    try:
        (message,) = mailbox.fetch_new()
        mailbox.settle(message.key, ReportOutcome.PROCESSED)
    finally:
        mailbox.close()
    assert message.raw == report(1)
    # The system's trust store does not know the throw-away certificate: refused, not ignored.
    with pytest.raises(ReportError, match="TLS failed"):
        list(ImapMailbox(cfg).fetch_new())


def test_a_server_that_never_answers_times_out(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        cfg = ImapMailboxConfig(
            host="127.0.0.1", port=port, username=USERNAME, password_env=PASSWORD_ENV, security="none"
        )
        with pytest.raises(ReportError, match=r"connect failed: no answer within 0.5 s"):
            list(ImapMailbox(cfg, timeout=0.5).fetch_new())


# -- end to end: mail sent with VERP, reports over IMAP, `publisher bounces process` -----


def dsn(verp: str, recipient: str, n: int, status: str = "5.1.1") -> bytes:
    """A delivery status notification as Postfix writes one (RFC 3464)."""
    return f"""\
Return-Path: <>
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
To: {verp}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-{n}@mx.example.net>
Date: Wed, 25 Nov 2026 10:00:00 +0000
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B{n}"

--B{n}
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.example.net[192.0.2.25] said: 550 {status}
    <{recipient}>: Recipient address rejected: User unknown

--B{n}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4ZX1Y2Z3
Arrival-Date: Wed, 25 Nov 2026 09:59:58 +0000

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: {status}
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected: User unknown

--B{n}
Content-Type: text/rfc822-headers

Return-Path: <{verp}>
From: News <news@example.org>
To: {recipient}
Subject: Weekly digest

--B{n}--
""".replace("\n", "\r\n").encode()


E2E_CONFIG = """\
[site]
title = "Test"
base_url = "http://127.0.0.1:8080"
postal_address = "1 Example Street, 1200 Geneva"

[storage]
url = "sqlite:///{root}/publisher.db"

[feeds]
output_dir = "{root}/public"

[[categories]]
slug = "news"
title = "News"
labels = ["News"]

[[sources]]
name = "sample"
type = "directory"
path = "content"

[smtp]
host = "127.0.0.1"
port = {smtp_port}

[delivery]
journal_dir = "{root}/journal"

[[lists]]
slug = "weekly"
name = "Weekly digest"
sender = "News <news@example.org>"

[[lists]]
slug = "press"
name = "Press releases"
sender = "Press <press@example.org>"

[bounces]
address = "bounces@example.org"

[bounces.imap]
host = "127.0.0.1"
port = {imap_port}
username = "{user}"
password_env = "{env}"
security = "none"
"""


def run_cli(root: Path, *args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), PASSWORD_ENV: password, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "publisher.cli", "--config", str(root / "config.toml"), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # four CLI runs
def test_bounces_process_reads_reports_over_imap_once(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpSink
) -> None:
    (tmp_path / "config.toml").write_text(
        E2E_CONFIG.format(
            root=tmp_path,
            smtp_port=smtp_server.port,
            imap_port=dovecot.port,
            user=USERNAME,
            env=PASSWORD_ENV,
        )
    )
    settings = load_config(tmp_path / "config.toml")
    pub = Publisher(settings, clock=lambda: NOW)
    try:
        for email in (ANN, BOB):
            for slug in ("weekly", "press"):
                add(settings, pub.store, slug, email, "", "en", now=NOW)
        pub.store.items.save([item(1, NOW - timedelta(hours=2))], [], NOW)
        assert asyncio.run(pub.send_digest("weekly")).ok
    finally:
        pub.close()
    verp = {r.rcpt_tos[0]: r.mail_from for r in smtp_server.received}
    assert verp[ANN].startswith("bounces+") and verp[ANN].endswith("@example.org")
    dovecot.append(dsn(verp[ANN], ANN, 1))  # a hard bounce for ann
    issue_and_subscriber = verp[BOB].partition("@")[0].rpartition("-")[0]
    forged = f"{issue_and_subscriber}-{'a' * 16}@example.org"
    dovecot.append(dsn(forged, BOB, 2))  # bob's token with a forged MAC: names nobody
    dovecot.append(b"Message-ID: <junk-3@example.net>\r\nSubject: hello\r\n\r\nnot a report\r\n")

    wrong = run_cli(tmp_path, "bounces", "process", password="wrong")
    assert wrong.returncode == 1
    assert wrong.stderr.strip().count("\n") == 0, wrong.stderr
    assert "login refused" in wrong.stderr and PASSWORD_ENV in wrong.stderr
    assert len(message_ids(dovecot)["INBOX"]) == 3  # nothing moved

    first = run_cli(tmp_path, "bounces", "process")
    assert first.returncode == 0, first.stderr
    folders = message_ids(dovecot)
    assert folders == {
        "Processed": [(b"<dsn-1@mx.example.net>", frozenset({b"\\Seen"}))],
        "Unmatched": [(b"<dsn-2@mx.example.net>", frozenset())],
        "Unparsed": [(b"<junk-3@example.net>", frozenset())],
    }
    pub = Publisher(load_config(tmp_path / "config.toml"), clock=lambda: NOW)
    try:
        statuses = {e: statuses_of(pub, e) for e in (ANN, BOB)}
    finally:
        pub.close()
    assert statuses[ANN] == {SubscriptionStatus.BOUNCED}
    assert statuses[BOB] == {SubscriptionStatus.CONFIRMED}

    # The same report again (a relay that sent it twice) and a second run change nothing.
    dovecot.append(dsn(verp[ANN], ANN, 1))
    again = run_cli(tmp_path, "bounces", "process", "--json")
    assert again.returncode == 0, again.stderr
    counts = json.loads(again.stdout)
    assert counts["applied"] == 0 and counts["duplicate"] == 1
    assert message_ids(dovecot)["Processed"] == [(b"<dsn-1@mx.example.net>", frozenset({b"\\Seen"}))] * 2
    assert run_cli(tmp_path, "bounces", "process", "--json").returncode == 0
    assert message_ids(dovecot) == {
        "Processed": [(b"<dsn-1@mx.example.net>", frozenset({b"\\Seen"}))] * 2,
        "Unmatched": [(b"<dsn-2@mx.example.net>", frozenset())],
        "Unparsed": [(b"<junk-3@example.net>", frozenset())],
    }


def statuses_of(pub: Publisher, email: str) -> set[SubscriptionStatus]:
    sid = pub.store.subscribers.find_id(email)
    assert sid is not None
    return set(pub.store.subscribers.statuses(sid).values())
