"""The mail transports against a real aiosmtpd server on loopback and a real Maildir."""

from __future__ import annotations

import asyncio
import email
import mailbox
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from publisher.config import Settings, SmtpConfig
from publisher.errors import MailError
from publisher.mailer import (
    MaildirTransport,
    OutgoingMessage,
    SendResult,
    SmtpTransport,
    classify_reply,
    make_transport,
)
from publisher.models import DeliveryStatus
from tests.smtp_server import Rule, SmtpSink, TlsFiles, free_port

SENDER = "bounces@example.org"


def message(key: int, recipient: str | None = None) -> OutgoingMessage:
    """A small complete message; a line starting with a dot checks dot-stuffing."""
    to = recipient or f"reader{key}@example.net"
    data = (
        f"From: News <news@example.org>\r\nTo: <{to}>\r\nSubject: Issue {key}\r\n"
        f"Message-ID: <{key}@example.org>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nHello {key}\r\n.a line starting with a dot\r\n"
    ).encode()
    return OutgoingMessage(key=key, sender=SENDER, recipient=to, data=data)


def send(
    transport: SmtpTransport | MaildirTransport, messages: Iterable[OutgoingMessage]
) -> dict[int, SendResult]:
    """Send and return the results by key, checking each message got exactly one."""
    results: list[SendResult] = []

    async def go() -> None:
        try:
            await transport.send(messages, results.append)
        finally:
            await transport.close()

    asyncio.run(go())
    keys = [r.key for r in results]
    assert len(keys) == len(set(keys)), f"a message was reported twice: {keys}"
    return {r.key: r for r in results}


def smtp(sink: SmtpSink, **overrides: Any) -> SmtpTransport:
    """A transport to ``sink`` with short back-offs so retries do not slow the tests."""
    options = {k: overrides.pop(k) for k in ("tls_context", "max_slowdowns", "max_drops") if k in overrides}
    return SmtpTransport(sink.config(**overrides), backoff=0.02, **options)


# -- outcomes --------------------------------------------------------------------------


def test_a_message_arrives_byte_for_byte(smtp_server: SmtpSink) -> None:
    msg = message(1)
    results = send(smtp(smtp_server, connections=1), [msg])

    assert results[1].status is DeliveryStatus.SENT
    assert results[1].code == 250
    assert results[1].at.tzinfo is not None
    [got] = smtp_server.accepted()
    assert (got.mail_from, got.rcpt_tos) == (SENDER, [msg.recipient])
    assert got.data == msg.data
    assert ["SIZE=" in " ".join(opts) for opts in smtp_server.mail_options] == [True]


@pytest.mark.parametrize("stage", ["rcpt", "data"])
def test_a_temporary_refusal_is_deferred_and_the_rest_is_sent(smtp_server: SmtpSink, stage: str) -> None:
    smtp_server.script(Rule(stage, reply="451 4.3.0 try later", recipient="reader2@example.net"))  # type: ignore[arg-type]
    results = send(smtp(smtp_server, connections=1), [message(1), message(2), message(3)])

    assert results[2].status is DeliveryStatus.DEFERRED
    assert (results[2].code, results[2].text) == (451, "4.3.0 try later")
    assert results[1].status is results[3].status is DeliveryStatus.SENT
    assert [r.rcpt_tos for r in smtp_server.accepted()] == [["reader1@example.net"], ["reader3@example.net"]]
    assert len(smtp_server.peers) == 1, "a refusal must not cost the connection"


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("550 5.1.1 user unknown", DeliveryStatus.BOUNCED),
        ("550 no such user here", DeliveryStatus.BOUNCED),
        ("553 5.1.3 bad address syntax", DeliveryStatus.BOUNCED),
        ("554 5.7.1 rejected", DeliveryStatus.FAILED),
        ("550 5.7.1 relaying denied", DeliveryStatus.FAILED),
    ],
)
def test_permanent_refusals_bounce_only_for_bad_addresses(
    smtp_server: SmtpSink, reply: str, status: DeliveryStatus
) -> None:
    smtp_server.script(Rule("rcpt", reply=reply, recipient="reader1@example.net"))
    results = send(smtp(smtp_server, connections=1), [message(1), message(2)])

    assert results[1].status is status
    assert results[1].code == int(reply[:3])
    assert results[2].status is DeliveryStatus.SENT


def test_a_refusal_after_the_text_is_failed(smtp_server: SmtpSink) -> None:
    smtp_server.script(Rule("data", reply="552 5.3.4 message too big", times=1))
    results = send(smtp(smtp_server, connections=1), [message(1), message(2)])

    assert results[1].status is DeliveryStatus.FAILED
    assert results[2].status is DeliveryStatus.SENT


@pytest.mark.parametrize("reply", ["421 4.7.0 slow down", "454 4.7.0 temporary authentication failure"])
def test_slow_down_backs_off_and_delivers_without_a_failure(smtp_server: SmtpSink, reply: str) -> None:
    smtp_server.script(Rule("rcpt", reply=reply, times=2))
    results = send(smtp(smtp_server, connections=2), [message(1), message(2), message(3)])

    assert {r.status for r in results.values()} == {DeliveryStatus.SENT}
    assert sorted(r.message["Subject"] for r in smtp_server.accepted()) == ["Issue 1", "Issue 2", "Issue 3"]
    assert sum(smtp_server.rcpt_attempts.values()) == 5
    assert len(smtp_server.peers) >= 3, "a 421 must close the connection and open a new one"


def test_endless_slow_down_is_deferred_not_failed(smtp_server: SmtpSink) -> None:
    smtp_server.script(Rule("mail", reply="421 4.7.0 slow down"))
    results = send(smtp(smtp_server, connections=1, max_slowdowns=2), [message(1)])

    assert (results[1].status, results[1].code) == (DeliveryStatus.DEFERRED, 421)
    assert smtp_server.received == []


def test_a_relay_answering_421_to_everything_stops_the_send_within_its_bound(smtp_server: SmtpSink) -> None:
    """Backing off per message would take hours; the whole send stops, the rest queued.

    The messages that used up their own slowdowns on the way are deferred (the ledger
    retries them); the other eighteen get no result, so they stay queued.
    """
    smtp_server.script(Rule("rcpt", reply="421 4.7.0 slow down"))
    results: list[SendResult] = []
    transport = smtp(smtp_server, connections=2, max_slowdowns=2)
    with pytest.raises(
        MailError, match=r"answered 421 4.7.0 slow down \d+ times in a row on every connection"
    ):
        asyncio.run(transport.send([message(k) for k in range(1, 21)], results.append))

    bound = (2 + 1) * 2  # (max_slowdowns + 1) * connections
    assert bound <= sum(smtp_server.rcpt_attempts.values()) <= bound + 2
    assert len(results) <= 2
    assert {r.status for r in results} <= {DeliveryStatus.DEFERRED}
    assert smtp_server.received == []


def test_a_slowdown_streak_is_broken_by_any_other_answer(smtp_server: SmtpSink) -> None:
    # Two 421s and a 451 for the first message, two more 421s for the second: four in a
    # row would stop a send whose bound is three, but the 451 is an answer, not a slowdown.
    smtp_server.script(
        Rule("rcpt", reply="421 4.7.0 slow down", times=2),
        Rule("rcpt", reply="451 4.3.0 later", times=1),
        Rule("rcpt", reply="421 4.7.0 slow down", times=2),
    )
    results = send(smtp(smtp_server, connections=1, max_slowdowns=2), [message(k) for k in range(1, 4)])

    assert [results[k].status for k in (1, 2, 3)] == [
        DeliveryStatus.DEFERRED,
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
    ]


@pytest.mark.parametrize(
    "reply", ["530 5.7.0 Authentication required", "553 5.7.1 Sender address rejected", "550 not allowed"]
)
def test_a_sender_refused_at_mail_from_stops_the_send_and_fails_no_one(
    smtp_server: SmtpSink, reply: str
) -> None:
    """Every message would be refused the same way: nothing is marked failed, all stay queued."""
    smtp_server.script(Rule("mail", reply=reply))
    results: list[SendResult] = []
    transport = smtp(smtp_server, connections=2)
    with pytest.raises(MailError, match=f"refused the sender <{SENDER}> at MAIL FROM: {reply}"):
        asyncio.run(transport.send([message(k) for k in range(1, 11)], results.append))

    assert results == []
    assert smtp_server.received == []


def test_a_size_refusal_at_mail_from_fails_that_message_only(smtp_server: SmtpSink) -> None:
    smtp_server.script(Rule("mail", reply="552 5.3.4 message size exceeds fixed limit", times=1))
    results = send(smtp(smtp_server, connections=1), [message(1), message(2)])

    assert (results[1].status, results[1].code) == (DeliveryStatus.FAILED, 552)
    assert results[2].status is DeliveryStatus.SENT


def test_a_drop_before_data_is_retried_and_delivered_once(smtp_server: SmtpSink) -> None:
    smtp_server.script(Rule("rcpt", drop=True, recipient="reader2@example.net", times=1))
    results = send(smtp(smtp_server, connections=1), [message(1), message(2), message(3)])

    assert {k: r.status for k, r in results.items()} == dict.fromkeys((1, 2, 3), DeliveryStatus.SENT)
    assert len(smtp_server.accepted_for("reader2@example.net")) == 1
    assert smtp_server.rcpt_attempts["reader2@example.net"] == 2


def test_a_drop_after_data_is_unknown_and_never_resent(smtp_server: SmtpSink) -> None:
    smtp_server.script(Rule("data", drop=True, recipient="reader1@example.net"))
    results = send(smtp(smtp_server, connections=1), [message(1), message(2)])

    assert results[1].status is DeliveryStatus.UNKNOWN
    assert results[1].code is None
    assert "after the message was sent" in results[1].text
    assert [r.rcpt_tos for r in smtp_server.received].count(["reader1@example.net"]) == 1
    assert results[2].status is DeliveryStatus.SENT, "the next message goes out on a new connection"


def test_a_silent_server_after_the_text_times_out_as_unknown(smtp_server: SmtpSink) -> None:
    smtp_server.script(Rule("data", delay=3, recipient="reader1@example.net"))
    started = time.monotonic()
    results = send(smtp(smtp_server, connections=1, timeout=0.5), [message(1), message(2)])

    assert time.monotonic() - started < 2.5
    assert results[1].status is DeliveryStatus.UNKNOWN
    assert len([r for r in smtp_server.received if r.rcpt_tos == ["reader1@example.net"]]) == 1
    assert results[2].status is DeliveryStatus.SENT


def test_a_timeout_before_data_is_retried(smtp_server: SmtpSink) -> None:
    smtp_server.script(Rule("rcpt", delay=3, times=1))
    results = send(smtp(smtp_server, connections=1, timeout=0.5), [message(1)])

    assert results[1].status is DeliveryStatus.SENT
    assert len(smtp_server.accepted()) == 1


def test_an_address_that_keeps_dropping_is_deferred(smtp_server: SmtpSink) -> None:
    smtp_server.script(Rule("rcpt", drop=True, recipient="reader1@example.net"))
    results = send(smtp(smtp_server, connections=1, max_drops=2), [message(1), message(2)])

    assert results[1].status is DeliveryStatus.DEFERRED
    assert "before the message was sent, 3 times" in results[1].text
    assert results[2].status is DeliveryStatus.SENT


def test_non_ascii_addresses_use_smtputf8(smtp_server: SmtpSink) -> None:
    results = send(smtp(smtp_server, connections=1), [message(1, recipient="jörg@exämple.net")])

    assert results[1].status is DeliveryStatus.SENT
    assert smtp_server.accepted_for("jörg@exämple.net")
    assert "SMTPUTF8" in smtp_server.mail_options[0]


def test_an_address_the_server_cannot_take_fails_alone() -> None:
    with SmtpSink(smtputf8=False) as sink:
        results = send(smtp(sink, connections=1), [message(1, recipient="jörg@exämple.net"), message(2)])

        assert results[1].status is DeliveryStatus.FAILED
        assert "SMTPUTF8" in results[1].text
        assert results[2].status is DeliveryStatus.SENT
        assert len(sink.peers) == 1


def test_a_garbled_reply_is_treated_as_a_lost_connection(smtp_server: SmtpSink) -> None:
    smtp_server.script(Rule("rcpt", reply="hello there", times=1))
    results = send(smtp(smtp_server, connections=1), [message(1)])

    assert results[1].status is DeliveryStatus.SENT
    assert len(smtp_server.accepted()) == 1
    assert len(smtp_server.peers) == 2, "the garbled session must be abandoned"


# -- throughput, concurrency and pacing ------------------------------------------------


def test_many_messages_over_four_connections_arrive_exactly_once(smtp_server: SmtpSink) -> None:
    transport = smtp(smtp_server, connections=4)
    peak = 0
    pulled = 0
    most_in_doubt = 0  # handed out by the iterator, no result yet

    async def record(result: SendResult) -> None:
        nonlocal peak, most_in_doubt
        peak = max(peak, transport.in_flight)
        most_in_doubt = max(most_in_doubt, pulled - len(results))
        results.append(result)
        await asyncio.sleep(0)

    async def produce() -> AsyncIterator[OutgoingMessage]:
        nonlocal pulled
        for key in range(300):
            pulled += 1
            yield message(key)

    results: list[SendResult] = []

    async def go() -> None:
        await transport.send(produce(), record)
        await transport.close()

    asyncio.run(go())

    assert sorted(r.key for r in results) == list(range(300))
    assert {r.status for r in results} == {DeliveryStatus.SENT}
    ids = [r.message["Message-ID"] for r in smtp_server.accepted()]
    assert sorted(ids) == sorted(f"<{k}@example.org>" for k in range(300))
    assert len(smtp_server.peers) == 4
    assert 1 <= peak <= 4
    assert most_in_doubt <= 4, "messages must not be pulled far ahead of free connections"


def test_connections_stay_open_across_sends(smtp_server: SmtpSink) -> None:
    transport = smtp(smtp_server, connections=1)
    results: list[SendResult] = []

    async def go() -> None:
        await transport.send([message(1)], results.append)
        await transport.send([message(2)], results.append)
        await transport.close()

    asyncio.run(go())
    assert [r.status for r in results] == [DeliveryStatus.SENT] * 2
    assert len(smtp_server.peers) == 1


def test_rate_per_second_is_honoured_across_connections(smtp_server: SmtpSink) -> None:
    started = time.monotonic()
    results = send(smtp(smtp_server, connections=4, rate_per_second=10), [message(k) for k in range(20)])

    assert time.monotonic() - started >= 1.8
    assert len(results) == 20
    assert len(smtp_server.accepted()) == 20


def test_nothing_to_send_opens_no_connection(smtp_server: SmtpSink) -> None:
    assert send(smtp(smtp_server), []) == {}
    assert smtp_server.peers == set()


def test_a_failing_callback_stops_the_send_and_propagates(smtp_server: SmtpSink) -> None:
    def explode(result: SendResult) -> None:
        raise RuntimeError(f"ledger down at {result.key}")

    transport = smtp(smtp_server, connections=2)
    with pytest.raises(RuntimeError, match="ledger down"):
        asyncio.run(transport.send([message(k) for k in range(50)], explode))
    assert len(smtp_server.accepted()) < 50


def test_cancelling_a_send_lets_the_message_in_flight_finish(smtp_server: SmtpSink) -> None:
    smtp_server.script(Rule("data", delay=1, times=1))
    results: list[SendResult] = []

    async def go() -> None:
        transport = smtp(smtp_server, connections=1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(transport.send([message(k) for k in range(3)], results.append), 0.3)
        await transport.close()

    asyncio.run(go())
    assert [(r.key, r.status) for r in results] == [(0, DeliveryStatus.SENT)]
    assert len(smtp_server.accepted()) == 1


# -- on_start: the moment a message may reach someone ----------------------------------


def test_on_start_comes_only_when_the_text_goes_out(smtp_server: SmtpSink) -> None:
    """Refused envelopes and drops before DATA never start; a drop after the text did."""
    smtp_server.script(
        Rule("rcpt", reply="550 5.1.1 user unknown", recipient="reader1@example.net"),
        Rule("rcpt", drop=True, recipient="reader2@example.net", times=1),
        Rule("data", drop=True, recipient="reader3@example.net"),
        Rule("data", reply="421 4.7.0 too many messages", recipient="reader4@example.net", times=1),
    )
    events: list[tuple[str, int]] = []

    async def go() -> None:
        transport = smtp(smtp_server, connections=1)
        try:
            await transport.send(
                [message(k) for k in range(5)],
                lambda r: events.append((r.status.value, r.key)),
                lambda key: events.append(("start", key)),
            )
        finally:
            await transport.close()

    asyncio.run(go())
    assert events == [
        ("start", 0),
        ("sent", 0),
        ("bounced", 1),  # refused at RCPT: no start
        ("start", 2),  # the drop at RCPT was before DATA: retried, started once
        ("sent", 2),
        ("start", 3),
        ("unknown", 3),  # only a started message can be unknown
        ("start", 4),
        ("deferred", 4),  # refused after its text: a final answer, not in doubt
    ]


def test_an_on_start_failure_stops_the_send_before_the_text(smtp_server: SmtpSink) -> None:
    def journal_full(key: int) -> None:
        raise OSError(28, "No space left on device")

    results: list[SendResult] = []
    transport = smtp(smtp_server, connections=1)
    with pytest.raises(OSError, match="No space left"):
        asyncio.run(transport.send([message(1), message(2)], results.append, journal_full))
    assert results == [] and smtp_server.received == []  # not retried as a network error


@pytest.mark.parametrize("outage", ["421 at connect", "no greeting", "broken STARTTLS"])
def test_an_unreachable_relay_starts_nothing(tls_files: TlsFiles, outage: str) -> None:
    from tests.smtp_server import DOWN, SILENT

    starttls = outage == "broken STARTTLS"
    with SmtpSink(security="starttls" if starttls else "none", tls=tls_files) as sink:
        sink.greeting = {"421 at connect": DOWN, "no greeting": SILENT}.get(outage)
        sink.break_starttls = starttls
        started: list[int] = []
        transport = smtp(sink, connections=2, timeout=0.5, tls_context=tls_files.client_context())
        with pytest.raises(MailError, match=f"^cannot send mail via 127.0.0.1:{sink.port}: ") as caught:
            asyncio.run(transport.send([message(k) for k in range(5)], lambda r: None, started.append))
        assert started == [] and sink.received == []
        expected = {
            "421 at connect": "421 4.3.2 Service not available",
            "no greeting": "no answer within 0.5 s",
            "broken STARTTLS": "TLS failed: WRONG_VERSION_NUMBER",
        }
        assert expected[outage] in str(caught.value)


# -- security and login ----------------------------------------------------------------


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_encrypted_connections(tls_files: TlsFiles, security: str) -> None:
    with SmtpSink(security=security, tls=tls_files) as sink:  # type: ignore[arg-type]
        results = send(smtp(sink, connections=2, tls_context=tls_files.client_context()), [message(1)])
        assert results[1].status is DeliveryStatus.SENT
        assert len(sink.accepted()) == 1


def test_an_untrusted_certificate_is_refused(tls_files: TlsFiles) -> None:
    with SmtpSink(security="tls", tls=tls_files) as sink, pytest.raises(MailError) as caught:
        send(smtp(sink, connections=1), [message(1)])
    assert f"127.0.0.1:{sink.port}" in str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert sink.received == []


def test_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISHER_TEST_SMTP_PASSWORD", "s3cret-pass")
    with SmtpSink(auth=True) as sink:
        results = send(smtp(sink, connections=2), [message(1), message(2)])
        assert {r.status for r in results.values()} == {DeliveryStatus.SENT}
        assert [r.login for r in sink.accepted()] == ["mailer", "mailer"]


def test_a_refused_login_stops_the_send_without_results(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISHER_TEST_SMTP_PASSWORD", "wrong")
    results: list[SendResult] = []
    with SmtpSink(auth=True) as sink, pytest.raises(MailError, match="login refused: 535"):
        asyncio.run(SmtpTransport(sink.config(connections=2)).send([message(1), message(2)], results.append))
    assert results == []
    assert sink.received == []


def test_a_missing_password_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLISHER_TEST_SMTP_PASSWORD", raising=False)
    with SmtpSink(auth=True) as sink, pytest.raises(MailError, match="PUBLISHER_TEST_SMTP_PASSWORD"):
        send(smtp(sink), [message(1)])


def test_connection_refused_raises_mail_error_and_reports_nothing() -> None:
    port = free_port()  # nothing listens there
    transport = SmtpTransport(
        SmtpConfig.model_validate({"host": "127.0.0.1", "port": port, "connections": 4})
    )
    results: list[SendResult] = []

    started = time.monotonic()
    with pytest.raises(MailError, match=f"127.0.0.1:{port}") as caught:
        asyncio.run(transport.send([message(k) for k in range(10)], results.append))
    assert str(caught.value) == f"cannot send mail via 127.0.0.1:{port}: Connection refused"
    assert results == []
    assert time.monotonic() - started < 2, "a server that is down at start fails at once"


def test_a_relay_host_that_does_not_resolve_is_named_plainly() -> None:
    """The resolver's errno (-2) used to reach the admin as 'Unknown error -2'."""
    transport = SmtpTransport(SmtpConfig.model_validate({"host": "relay.invalid", "port": 25}))
    with pytest.raises(MailError) as caught:
        asyncio.run(transport.send([message(1)], lambda _result: None))
    text = str(caught.value)
    assert text.startswith("cannot send mail via relay.invalid:25: the host name does not resolve (")
    assert text.endswith("); check [smtp] host") and "Unknown error" not in text


# -- reply classification --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "status"),
    [
        (250, "2.0.0 Ok: queued", DeliveryStatus.SENT),
        (451, "4.3.0 try later", DeliveryStatus.DEFERRED),
        (452, "4.2.2 mailbox full", DeliveryStatus.DEFERRED),
        (550, "5.1.1 <a@b>: Recipient address rejected: User unknown", DeliveryStatus.BOUNCED),
        (550, "5.1.10 null MX", DeliveryStatus.BOUNCED),
        (551, "User unknown", DeliveryStatus.FAILED),
        (550, "Requested action not taken: mailbox unavailable", DeliveryStatus.FAILED),
        (550, "5.11.1 not an address status", DeliveryStatus.FAILED),
        (552, "5.2.2 mailbox full", DeliveryStatus.FAILED),
        (554, "5.7.1 rejected", DeliveryStatus.FAILED),
    ],
)
def test_classify_reply(code: int, text: str, status: DeliveryStatus) -> None:
    assert classify_reply(code, text) is status


# -- Maildir ---------------------------------------------------------------------------


def test_maildir_writes_readable_messages(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    results = send(MaildirTransport(outbox), [message(k) for k in range(3)])

    assert {r.status for r in results.values()} == {DeliveryStatus.SENT}
    files = sorted((outbox / "new").iterdir())
    assert len(files) == 3
    assert list((outbox / "tmp").iterdir()) == []
    parsed = sorted((email.message_from_bytes(f.read_bytes()) for f in files), key=lambda m: m["Subject"])
    assert [m["Subject"] for m in parsed] == ["Issue 0", "Issue 1", "Issue 2"]
    assert parsed[1]["Delivered-To"] == "reader1@example.net"
    assert parsed[1]["Return-Path"] == f"<{SENDER}>"
    assert parsed[1].get_payload() == "Hello 1\r\n.a line starting with a dot\r\n"
    assert len(mailbox.Maildir(outbox, create=False)) == 3


def test_maildir_takes_async_input_and_async_callbacks(tmp_path: Path) -> None:
    seen: list[int] = []

    async def produce() -> AsyncIterator[OutgoingMessage]:
        for key in range(2):
            yield message(key)

    async def record(result: SendResult) -> None:
        seen.append(result.key)

    asyncio.run(MaildirTransport(tmp_path / "box").send(produce(), record))
    assert seen == [0, 1]


def test_maildir_starts_each_message_just_before_it_lands_in_new(tmp_path: Path) -> None:
    box = tmp_path / "box"
    seen: list[tuple[str, int, int]] = []

    def landed() -> int:
        return len(list((box / "new").iterdir()))

    asyncio.run(
        MaildirTransport(box).send(
            [message(0), message(1)],
            lambda r: seen.append(("result", r.key, landed())),
            lambda key: seen.append(("start", key, landed())),
        )
    )
    assert seen == [("start", 0, 0), ("result", 0, 1), ("start", 1, 1), ("result", 1, 2)]
    assert list((box / "tmp").iterdir()) == []


def test_an_unwritable_maildir_raises_mail_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(MailError, match="Maildir outbox"):
        send(MaildirTransport(blocker / "outbox"), [message(1)])


def test_make_transport_follows_the_config(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    with_smtp = make_transport(make_settings(smtp={"host": "127.0.0.1", "port": 2525}))
    assert isinstance(with_smtp, SmtpTransport)
    assert with_smtp.where == "127.0.0.1:2525"
    without = make_transport(make_settings())
    assert isinstance(without, MaildirTransport)
    assert without.path == tmp_path / "outbox"


def test_dot_stuffing_fast_path_matches_aiosmtplib() -> None:
    """The CRLF fast path of the DATA payload must equal aiosmtplib's own preparation."""
    import random

    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    from publisher.mailer import _stuff

    def reference(data: bytes) -> bytes:
        return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"

    rng = random.Random(7)
    cases = [b".a\r\n.b\r\n..c\r\nd.\r\n", b"a\nb", b"a\r\nb", b".\r\n", b"a\rb\r\n", b""]
    cases += [bytes(rng.choice(b".\r\na") for _ in range(rng.randint(0, 12))) for _ in range(5000)]
    for data in cases:
        assert _stuff(data) == reference(data), data
