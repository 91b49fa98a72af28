"""The IMAP bounce mailbox against a real IMAP server: Dovecot on loopback (tests/imap_server.py).

Reports are put in with IMAP APPEND, as a mail server's delivery or another client would;
what the publisher did is read back from the server's folders and flags.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import publisher.bounces.imap as imap_module
from publisher.bounces.imap import ImapMailbox
from publisher.config import ImapMailboxConfig
from publisher.errors import ConfigError, ReportError
from publisher.models import ReportOutcome
from tests.imap_server import PASSWORD, USERNAME, Dovecot
from tests.smtp_server import TlsFiles

PASSWORD_ENV = "PUBLISHER_TEST_IMAP_PASSWORD"


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
