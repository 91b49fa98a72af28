"""Mail transports: push already-built message bytes to an SMTP server or a Maildir.

Rendering, personalising and the delivery ledger live elsewhere; this module only
moves bytes and says, for every message handed in, what happened to it, so that the
ledger can be written in batches from the ``on_result`` callback. It also says, through
``on_start``, the moment a message's text is about to be written to an open connection:
only from then on can a lost reply leave the message in doubt, so only then does the
ledger journal it as started (a relay that refuses or never answers a connection leaves
nothing in doubt).

Why the SMTP side drives each transaction itself instead of calling
``aiosmtplib.SMTP.sendmail``: the ledger must tell "not delivered, try again" from
"the server may have it". A connection lost before the message text was sent means
the server has nothing, so the message is retried on a fresh connection; lost after
the text was sent but before the final reply means the server may have accepted it,
so it is reported ``unknown`` and never resent automatically (resending would
duplicate mail). ``sendmail`` hides that boundary.

aiosmtplib has no pipelining and no pool, so throughput comes from several clients,
each a worker pulling from one bounded queue: the event loop always has work and no
message waits on a database round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import socket
import ssl
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path
from typing import Protocol

import aiosmtplib
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

from publisher.config import Settings, SmtpConfig
from publisher.errors import MailError
from publisher.models import DeliveryStatus
from publisher.text import storable

__all__ = [
    "MaildirTransport",
    "Messages",
    "OutgoingMessage",
    "ResultCallback",
    "SendResult",
    "SmtpTransport",
    "StartCallback",
    "Transport",
    "classify_reply",
    "make_transport",
]


@dataclass(slots=True)
class OutgoingMessage:
    """One fully built message for one recipient; ``key`` is the delivery's id."""

    key: int
    sender: str  # envelope from (bounces go there)
    recipient: str
    data: bytes  # complete RFC 5322 message with CRLF line endings


@dataclass(slots=True)
class SendResult:
    """What became of one message; ``code`` and ``text`` are the server's last reply."""

    key: int
    status: DeliveryStatus
    code: int | None
    text: str
    at: datetime


ResultCallback = Callable[[SendResult], Awaitable[None] | None]
StartCallback = Callable[[int], None]  # called with a message's key
Messages = AsyncIterable[OutgoingMessage] | Iterable[OutgoingMessage]


class Transport(Protocol):
    """What digests need from a mail transport.

    ``send`` calls ``on_result`` exactly once for every message it was handed, unless it
    raises :class:`MailError` (the transport as a whole failed): then only messages that
    were actually attempted get a result and the rest stay pending for a later run.

    ``on_start(key)`` is called right before a message's text is delivered (SMTP: after
    the server's 354 answer to DATA, before the text is written; Maildir: before the
    written file is renamed into ``new/``), possibly again for a retry. A message that
    got no ``on_start`` was certainly not delivered, whatever happened; one that got
    ``on_start`` and no result may have been. If ``on_start`` raises, that message is
    not delivered and the send stops with that error.
    """

    async def send(
        self, messages: Messages, on_result: ResultCallback, on_start: StartCallback | None = None
    ) -> None: ...

    async def close(self) -> None: ...


def make_transport(settings: Settings) -> Transport:
    """The transport the configuration asks for: SMTP when ``[smtp]`` is set, else the outbox."""
    if settings.smtp is not None:
        return SmtpTransport(settings.smtp)
    return MaildirTransport(settings.outbox.path)


# -- reply classification --------------------------------------------------------------

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?!\d)")
_NO_SUCH_USER = re.compile(r"user unknown|unknown user|no such user", re.IGNORECASE)
SLOWDOWN_CODES = frozenset({421, 454})
# A MAIL FROM refusal that is about this message (its declared SIZE), not the sender.
_SIZE_REFUSAL = re.compile(r"^552\b|\b5\.3\.4\b")


def classify_reply(code: int, text: str) -> DeliveryStatus:
    """Map a final SMTP reply to a ledger status.

    A permanent refusal is a *bounce* (the address is bad: stop mailing it) only when the
    server says so: an enhanced status 5.1.x (RFC 3463 "addressing status"), or a bare
    550 whose text says the user is unknown. Any other 5xx is a *failure* of this one
    message (policy, content, size), which says nothing about the address.
    """
    if 200 <= code < 300:
        return DeliveryStatus.SENT
    if 400 <= code < 500:
        return DeliveryStatus.DEFERRED
    if 500 <= code < 600:
        enhanced = _ENHANCED.match(text)
        if enhanced is not None:
            is_address = enhanced.group(1) == "5" and enhanced.group(2) == "1"
            return DeliveryStatus.BOUNCED if is_address else DeliveryStatus.FAILED
        if code == 550 and _NO_SUCH_USER.search(text):
            return DeliveryStatus.BOUNCED
    return DeliveryStatus.FAILED


def _result(message: OutgoingMessage, status: DeliveryStatus, code: int | None, text: str) -> SendResult:
    """The result, its reply text made storable: it reaches deliveries, events and logs."""
    return SendResult(message.key, status, code, storable(text), datetime.now(UTC))


async def _report(on_result: ResultCallback, result: SendResult) -> None:
    pending = on_result(result)
    if pending is not None:
        await pending


# -- Maildir ---------------------------------------------------------------------------

_maildir_counter = itertools.count()


class MaildirTransport:
    """Writes each message as one file of a Maildir (the outbox used without ``[smtp]``).

    Each file is written in ``tmp/`` and renamed into ``new/``, so a reader never sees a
    half-written message; there is no fsync per message (an outbox is for previews and
    tests, and speed matters more than surviving a power cut). ``Return-Path`` and
    ``Delivered-To`` are prepended because a Maildir file has no envelope otherwise.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")

    async def send(
        self, messages: Messages, on_result: ResultCallback, on_start: StartCallback | None = None
    ) -> None:
        self._create_folders()
        if isinstance(messages, AsyncIterable):
            async for message in messages:
                await _report(on_result, self._deliver(message, on_start))
        else:
            for message in messages:
                await _report(on_result, self._deliver(message, on_start))

    async def close(self) -> None:
        """Nothing is held open between sends."""

    def _create_folders(self) -> None:
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MailError(f"cannot create the Maildir outbox {self.path}: {e.strerror}") from e

    def _deliver(self, message: OutgoingMessage, on_start: StartCallback | None) -> SendResult:
        envelope = message.sender + message.recipient
        if "\r" in envelope or "\n" in envelope:
            return _result(message, DeliveryStatus.FAILED, None, "line break in an envelope address")
        name = self._unique_name()
        head = f"Return-Path: <{message.sender}>\r\nDelivered-To: {message.recipient}\r\n".encode()
        tmp = self.path / "tmp" / name
        try:
            with open(tmp, "xb") as f:
                f.write(head)
                f.write(message.data)
        except OSError as e:  # nothing reached new/: the message stays queued
            _discard(tmp)
            raise MailError(f"cannot write to the Maildir outbox {self.path}: {e.strerror}") from e
        if on_start is not None:
            try:
                on_start(message.key)  # the rename into new/ is the delivery
            except BaseException:
                _discard(tmp)
                raise
        try:
            os.rename(tmp, self.path / "new" / name)
        except OSError as e:
            raise MailError(f"cannot write to the Maildir outbox {self.path}: {e.strerror}") from e
        return _result(message, DeliveryStatus.SENT, None, f"written to {self.path / 'new' / name}")

    def _unique_name(self) -> str:
        # The Maildir convention: seconds, microseconds, pid and a counter, then the host.
        now = time.time_ns() // 1000
        return f"{now // 1_000_000}.M{now % 1_000_000}P{os.getpid()}Q{next(_maildir_counter)}.{self._host}"


def _discard(path: Path) -> None:
    """Remove a half-written Maildir file from tmp/ (best effort: tmp/ is not read)."""
    with contextlib.suppress(OSError):
        path.unlink()


# -- SMTP ------------------------------------------------------------------------------


class _Stage(IntEnum):
    """How far one transaction got; decides whether a lost connection lost the message."""

    ENVELOPE = 1  # MAIL, RCPT, DATA command: the server has nothing yet
    PAYLOAD = 2  # the message text went out: the server may have accepted it


@dataclass(slots=True)
class _Job:
    message: OutgoingMessage
    drops: int = 0  # connections lost before the message text was sent
    slowdowns: int = 0  # 421/454 replies


class _ConnectFailed(Exception):
    """A connection could not be opened; ``fatal`` when retrying cannot help (bad login)."""

    def __init__(self, cause: str, *, fatal: bool = False) -> None:
        super().__init__(cause)
        self.fatal = fatal


class _Pacer:
    """Spaces transaction starts ``1/rate`` seconds apart across all connections.

    A token bucket one token deep: ``rate_per_second`` is a promise to the relay, so it
    is never exceeded, not even in a burst after an idle spell.
    """

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self._interval:
            return
        now = asyncio.get_running_loop().time()
        start = max(now, self._next)
        self._next = start + self._interval
        if start > now:
            await asyncio.sleep(start - now)


def _stuff(data: bytes) -> bytes:
    """The DATA payload: CRLF line endings, leading dots doubled, ending in CRLF.CRLF.

    Digest messages are built with CRLF already; for them three byte counts (C speed)
    prove it and a plain replace does the dot-stuffing, instead of two regex passes
    over every message (the largest cost of sending a 36 KB digest).
    """
    crlf = data.count(b"\r\n")
    if data.count(b"\n") == crlf and data.count(b"\r") == crlf and data.endswith(b"\r\n"):
        stuffed = data.replace(b"\r\n.", b"\r\n..")
        if stuffed.startswith(b"."):
            stuffed = b"." + stuffed
        return stuffed + b".\r\n"
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"


class _Connection:
    """One SMTP client, opened lazily and reopened after a drop, with its backoff state."""

    def __init__(self, transport: SmtpTransport) -> None:
        self._transport = transport
        self.smtp: aiosmtplib.SMTP | None = None
        self.ever_connected = False
        self.connect_failures = 0  # consecutive
        self.slowdowns = 0  # consecutive 421/454 on this connection
        self.busy = False

    async def open(self) -> aiosmtplib.SMTP:
        if self.smtp is not None and self.smtp.is_connected:
            return self.smtp
        self.drop()
        smtp = self._transport._new_client()
        try:
            async with asyncio.timeout(self._transport.cfg.timeout):
                await smtp.connect()
                if smtp.is_ehlo_or_helo_needed:
                    await smtp.ehlo()
        except aiosmtplib.SMTPAuthenticationError as e:
            smtp.close()
            self.connect_failures += 1
            raise _ConnectFailed(f"login refused: {e.code} {e.message}", fatal=e.code >= 500) from e
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            smtp.close()
            self.connect_failures += 1
            if isinstance(e, TimeoutError):  # aiosmtplib's timeouts are TimeoutErrors too
                limit = self._transport.cfg.timeout
                raise _ConnectFailed(f"no answer within {limit:g} s (greeting, TLS or login)") from e
            raise _ConnectFailed(_describe(e)) from e
        self.smtp = smtp
        self.ever_connected = True
        self.connect_failures = 0
        return smtp

    def drop(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
        self.smtp = None

    async def reset(self) -> None:
        """RSET after a refused envelope so the next transaction starts clean."""
        if self.smtp is None or not self.smtp.is_connected:
            return
        try:
            await self.smtp.rset(timeout=min(self._transport.cfg.timeout, 10.0))
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            self.drop()

    async def quit(self) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is None or not smtp.is_connected:
            return
        try:
            await smtp.quit(timeout=5.0)
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            smtp.close()

    def backoff_delay(self, trouble: int) -> float:
        base = self._transport.backoff
        return 0.0 if trouble <= 0 else min(base * 2 ** (trouble - 1), self._transport.max_backoff)


def _describe(error: BaseException) -> str:
    """A short cause for humans: the OS's words for a socket error ("Connection refused")."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, aiosmtplib.SMTPResponseException):
            return f"{cause.code} {cause.message}"  # e.g. a 421 greeting: the relay's own words
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed: {cause.reason or cause}"
        if isinstance(cause, socket.gaierror):  # its errno is the resolver's, not the OS's
            return f"the host name does not resolve ({cause.strerror}); check [smtp] host"
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno)
        cause = cause.__cause__
    if isinstance(error, TimeoutError) and not str(error):
        return "timed out"
    return str(error) or type(error).__name__


class _Run:
    """The state one ``send`` call shares with its workers.

    ``slots`` (one per connection) bounds what is queued or in flight: the feeder waits
    for a free slot before it pulls a message, so memory stays flat however many are
    handed in; retries go back into the queue without taking a new slot, so they never
    block.
    """

    def __init__(
        self, on_result: ResultCallback, on_start: StartCallback | None, depth: int, workers: int
    ) -> None:
        self.on_result = on_result
        self.on_start = on_start
        self.queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self.slots = asyncio.Semaphore(depth)
        self.outstanding = 0
        self.fed_all = False
        self.live = workers
        self.done = asyncio.Event()
        self.error: BaseException | None = None
        self.slowdowns = 0  # 421/454 in a row, across every connection, since the last other answer

    def admit(self, message: OutgoingMessage) -> None:
        """Queue a message pulled after taking a slot (see ``SmtpTransport._feed``)."""
        self.outstanding += 1
        self.queue.put_nowait(_Job(message))

    def fed(self) -> None:
        self.fed_all = True
        self._check_done()

    async def report(self, result: SendResult) -> None:
        await _report(self.on_result, result)
        self.outstanding -= 1
        self.slots.release()
        self._check_done()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.done.set()

    def _check_done(self) -> None:
        if self.fed_all and self.outstanding == 0:
            self.done.set()


class SmtpTransport:
    """Sends over ``cfg.connections`` SMTP connections kept open across ``send`` calls.

    At most ``cfg.connections`` messages are in flight at once (see :attr:`in_flight`).
    Outcomes: 2xx sent; 4xx deferred; 421/454 make that connection back off and the
    message is tried again (deferred after ``max_slowdowns``, or at once when the
    answer came after the message text); 5.1.x and "user unknown"
    bounced; other 5xx failed; a connection lost before the message text went out is
    retried on a fresh connection (deferred after ``max_drops``); lost after it, unknown.

    Two answers are about the relay or the sender, not a recipient, and stop the whole
    send with MailError, the messages not yet sent left without a result (queued): a
    5xx to MAIL FROM other than a size refusal (a login the relay requires, a sender it
    rejects: every message would fail the same way), and 421/454 to
    ``(max_slowdowns + 1) * connections`` attempts in a row with no other answer
    between (a relay refusing everything; backing off per message would take hours).

    ``tls_context`` overrides certificate checks (a private CA); ``backoff`` is the first
    delay after a slowdown or a failed reconnect, doubling up to ``max_backoff``.
    """

    def __init__(
        self,
        cfg: SmtpConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_slowdowns: int = 5,
        max_drops: int = 3,
        reconnect_attempts: int = 3,
    ) -> None:
        self.cfg = cfg
        self.tls_context = tls_context
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_slowdowns = max_slowdowns
        self.max_drops = max_drops
        self.reconnect_attempts = reconnect_attempts
        self._connections = [_Connection(self) for _ in range(cfg.connections)]
        self._pacer = _Pacer(cfg.rate_per_second)
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Transactions under way right now; never more than ``cfg.connections``."""
        return self._in_flight

    @property
    def where(self) -> str:
        return f"{self.cfg.host}:{self.cfg.port}"

    async def send(
        self, messages: Messages, on_result: ResultCallback, on_start: StartCallback | None = None
    ) -> None:
        """Send every message and report each through ``on_result`` (``on_start``: see Transport).

        Raises MailError when no connection can be opened, greeted, secured or logged in
        to (refused, 421 at connect, no greeting, STARTTLS or TLS failure, bad login);
        an exception from ``messages``, ``on_start`` or ``on_result`` stops the send and
        propagates. Either way, messages not yet attempted get no result (nor on_start).
        """
        self._check_credentials()
        conns = len(self._connections)
        run = _Run(on_result, on_start, depth=conns, workers=conns)
        feeder = asyncio.create_task(self._feed(messages, run))
        workers = [asyncio.create_task(self._work(conn, run)) for conn in self._connections]
        for task in (feeder, *workers):
            task.add_done_callback(lambda t: _watch(t, run))
        try:
            await run.done.wait()
        finally:
            await self._stop(run, feeder, workers)
        if run.error is not None:
            raise run.error

    async def close(self) -> None:
        """Say QUIT on every open connection."""
        await asyncio.gather(*(conn.quit() for conn in self._connections))

    # -- internals ------------------------------------------------------------------

    def _check_credentials(self) -> None:
        if self.cfg.username and self.cfg.password is None:
            raise MailError(
                f"cannot log in to {self.where} as {self.cfg.username!r}: "
                f"the environment variable {self.cfg.password_env} holding the password is not set"
            )

    def _new_client(self) -> aiosmtplib.SMTP:
        cfg = self.cfg
        return aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            use_tls=cfg.security == "tls",
            start_tls=cfg.security == "starttls",
            username=cfg.username or None,
            password=cfg.password if cfg.username else None,
            local_hostname=cfg.helo,
            timeout=cfg.timeout,
            tls_context=self.tls_context,
        )

    async def _feed(self, messages: Messages, run: _Run) -> None:
        """Pull a message only once a connection is free to take it.

        Taking the slot *before* pulling means a message handed out by the caller's
        iterator is in flight, or about to be, never parked in a long queue: memory
        stays flat, and a send that stops (an outage, SIGTERM) leaves few messages
        pulled but unsent, which the caller puts back in its queue.
        """
        if isinstance(messages, AsyncIterable):
            pending = aiter(messages)
            while await run.slots.acquire() and (message := await anext(pending, None)) is not None:
                run.admit(message)
        else:
            ready = iter(messages)
            while await run.slots.acquire() and (message := next(ready, None)) is not None:
                run.admit(message)
        run.fed()

    async def _stop(self, run: _Run, feeder: asyncio.Task[None], workers: list[asyncio.Task[None]]) -> None:
        """End the workers: idle ones at once, busy ones after their current message.

        Letting a busy worker finish means a message that reached the server gets its
        result even when the send is aborted; queued messages get none (left pending).
        """
        run.done.set()  # also when the caller cancelled us: busy workers must not loop on
        feeder.cancel()
        for conn, task in zip(self._connections, workers, strict=True):
            if not conn.busy:
                task.cancel()
        await asyncio.gather(feeder, *workers, return_exceptions=True)

    async def _work(self, conn: _Connection, run: _Run) -> None:
        while True:
            job = await run.queue.get()
            if job is None or not await self._attempt(conn, job, run) or run.done.is_set():
                return

    async def _attempt(self, conn: _Connection, job: _Job, run: _Run) -> bool:
        """Try one job; False when this worker must retire."""
        try:
            smtp = await conn.open()
        except _ConnectFailed as e:
            run.queue.put_nowait(job)
            return await self._after_connect_failure(conn, run, e)
        await self._pacer.wait()
        conn.busy = True
        try:
            result = await self._transact(conn, smtp, job, run)
            if result is not None:
                await run.report(result)
                return True
        except _RelayRefused as e:
            run.fail(MailError(f"{e}; nothing more was sent, the rest stays queued"))
            return False
        finally:
            conn.busy = False
        run.queue.put_nowait(job)
        if not run.done.is_set():
            await asyncio.sleep(conn.backoff_delay(conn.slowdowns))
        return True

    async def _after_connect_failure(self, conn: _Connection, run: _Run, error: _ConnectFailed) -> bool:
        """Back off and retry a reconnect, or retire this worker.

        A connection that never opened is not retried (refused at start, or the server
        caps connections below ``cfg.connections``: the others carry on); when the last
        worker retires, or the login is refused, the whole send fails.
        """
        give_up = error.fatal or not conn.ever_connected or conn.connect_failures > self.reconnect_attempts
        if not give_up and not run.done.is_set():
            await asyncio.sleep(conn.backoff_delay(conn.connect_failures))
            return True
        run.live -= 1
        if error.fatal or run.live == 0:
            failure = MailError(f"cannot send mail via {self.where}: {error}")
            failure.__cause__ = error.__cause__
            run.fail(failure)
        return False

    async def _transact(
        self, conn: _Connection, smtp: aiosmtplib.SMTP, job: _Job, run: _Run
    ) -> SendResult | None:
        """One MAIL/RCPT/DATA exchange; None when the message must be tried again.

        Raises _RelayRefused when the answer stops the whole send (see the class).
        """
        message = job.message
        stage = _Stage.ENVELOPE
        self._in_flight += 1
        try:
            async with asyncio.timeout(self.cfg.timeout):
                payload = _stuff(message.data)
                mail_options, encoding = _envelope_options(smtp, message, len(payload))
                await smtp.mail(message.sender, options=mail_options, encoding=encoding)
                await smtp.rcpt(message.recipient, encoding=encoding)
                start = await smtp.execute_command(b"DATA")
                if start.code != 354:
                    raise aiosmtplib.SMTPDataError(start.code, start.message)
                _announce(run.on_start, message.key)
                stage = _Stage.PAYLOAD
                reply = await _send_payload(smtp, payload, self.cfg.timeout)
        except _CallerFailed as e:  # the caller cannot record the start: write nothing
            conn.drop()
            raise e.error from None
        except aiosmtplib.SMTPSenderRefused as e:
            if 500 <= e.code < 600 and not _SIZE_REFUSAL.search(f"{e.code} {e.message}"):
                await conn.reset()
                raise _RelayRefused(
                    f"the relay {self.where} refused the sender <{message.sender}> at MAIL FROM: "
                    f"{e.code} {storable(e.message)} (check [smtp] username and the list's sender)"
                ) from e
            return await self._refused(conn, job, stage, e.code, e.message, run)
        except aiosmtplib.SMTPResponseException as e:
            if not 200 <= e.code < 600:  # garbled reply: the session cannot be trusted
                return self._lost(conn, job, stage, e)
            return await self._refused(conn, job, stage, e.code, e.message, run)
        except (TimeoutError, OSError) as e:  # includes lost connections and aiosmtplib timeouts
            return self._lost(conn, job, stage, e)
        except (ValueError, aiosmtplib.SMTPNotSupported) as e:  # unusable address
            await conn.reset()
            return _result(message, DeliveryStatus.FAILED, None, f"cannot send to this address: {e}")
        finally:
            self._in_flight -= 1
        conn.slowdowns = run.slowdowns = 0
        return _result(message, classify_reply(reply.code, reply.message), reply.code, reply.message)

    async def _refused(
        self, conn: _Connection, job: _Job, stage: _Stage, code: int, text: str, run: _Run
    ) -> SendResult | None:
        if code in SLOWDOWN_CODES:
            conn.drop()
            conn.slowdowns += 1
            job.slowdowns += 1
            run.slowdowns += 1
            # After the text, a 421 is this message's final answer: deferred (retried
            # later by the ledger), so a stop or outage before a retry here cannot leave
            # a refused message looking in doubt.
            if stage is _Stage.ENVELOPE and job.slowdowns <= self.max_slowdowns:
                if run.slowdowns >= (self.max_slowdowns + 1) * len(self._connections):
                    raise _RelayRefused(
                        f"the relay {self.where} answered {code} {storable(text)} "
                        f"{run.slowdowns} times in a row on every connection"
                    )
                return None
            return _result(job.message, DeliveryStatus.DEFERRED, code, text)
        if stage is _Stage.ENVELOPE:
            await conn.reset()
        conn.slowdowns = run.slowdowns = 0
        return _result(job.message, classify_reply(code, text), code, text)

    def _lost(self, conn: _Connection, job: _Job, stage: _Stage, error: BaseException) -> SendResult | None:
        conn.drop()
        what = _describe(error)
        if stage is _Stage.PAYLOAD:
            text = f"connection lost after the message was sent, before the server confirmed it: {what}"
            return _result(job.message, DeliveryStatus.UNKNOWN, None, text)
        job.drops += 1
        if job.drops <= self.max_drops:
            return None
        text = f"connection lost before the message was sent, {job.drops} times: {what}"
        return _result(job.message, DeliveryStatus.DEFERRED, None, text)


class _RelayRefused(Exception):
    """An answer about the relay or the sender, not the recipient: the whole send stops."""


class _CallerFailed(Exception):
    """Carries an exception of ``on_start`` past the handlers meant for network errors."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _announce(on_start: StartCallback | None, key: int) -> None:
    if on_start is not None:
        try:
            on_start(key)
        except Exception as e:  # an OSError here is the journal's, not the connection's
            raise _CallerFailed(e) from e


def _watch(task: asyncio.Task[None], run: _Run) -> None:
    """Turn a crashed feeder or worker (bad input, a failing on_result) into the send's error."""
    if not task.cancelled() and (error := task.exception()) is not None:
        run.fail(error)


def _envelope_options(smtp: aiosmtplib.SMTP, message: OutgoingMessage, size: int) -> tuple[list[str], str]:
    """MAIL FROM options: SIZE when offered (RFC 1870), SMTPUTF8 for non-ASCII addresses."""
    options = [f"SIZE={size}"] if smtp.supports_extension("size") else []
    if (message.sender + message.recipient).isascii():
        return options, "ascii"
    if not smtp.supports_extension("smtputf8"):
        raise aiosmtplib.SMTPNotSupported("the address is not ASCII and the server lacks SMTPUTF8")
    return [*options, "SMTPUTF8"], "utf-8"


async def _send_payload(smtp: aiosmtplib.SMTP, payload: bytes, timeout: float) -> aiosmtplib.SMTPResponse:
    """Write the message text after a 354 and read the final reply."""
    protocol = smtp.protocol
    if protocol is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost")
    protocol.write(payload)
    reply = await protocol.read_response(timeout=timeout)
    if not 200 <= reply.code < 300:
        raise aiosmtplib.SMTPDataError(reply.code, reply.message)
    return reply
