"""A real SMTP server on loopback for tests, scriptable to misbehave on purpose.

Mail code is only trustworthy when tested against a server that really speaks SMTP,
including the unpleasant parts: temporary refusals, unknown users, "slow down",
connections that vanish before or after the message text, replies that never come,
and relays that are down: a 421 at connect, no greeting at all, a broken STARTTLS
(:attr:`SmtpSink.greeting`, :attr:`SmtpSink.break_starttls`, :meth:`SmtpSink.go_down_after`).
:class:`SmtpSink` wraps aiosmtpd's threaded ``Controller`` on 127.0.0.1 with a free
port, records every message it received (envelope and bytes) and follows
:class:`Rule` scripts per recipient or for every call. It can speak STARTTLS or
implicit TLS with a throwaway self-signed certificate, and require AUTH PLAIN/LOGIN.

``tests/conftest.py`` registers this module as a plugin (``pytest_plugins``), so the
fixtures ``smtp_server`` and ``tls_files`` are there in every test module::

    from tests.smtp_server import Rule, SmtpSink

    def test_x(smtp_server: SmtpSink) -> None:
        smtp_server.script(Rule("rcpt", reply="550 5.1.1 user unknown", recipient="gone@example.org"))
        ...  # send with smtp_server.config()
        assert smtp_server.accepted_for("ann@example.org")

The marker PYTEST_DONT_REWRITE keeps pytest from warning that this module was imported
before it could rewrite its asserts (it has none that tests rely on).
"""

from __future__ import annotations

import asyncio
import email
import email.message
import socket
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from publisher.config import SmtpConfig

Stage = Literal["mail", "rcpt", "data"]
Security = Literal["none", "starttls", "tls"]

USERNAME = "mailer"
SILENT = "silent"  # SmtpSink.greeting: accept the connection and never say anything
DOWN = "421 4.3.2 Service not available, closing transmission channel"
PASSWORD = "s3cret-pass"


@dataclass(slots=True)
class Rule:
    """How the server misbehaves at one stage of a transaction.

    ``stage`` is the command the rule answers: ``mail``, ``rcpt`` or ``data`` (the reply
    after the whole message text arrived). ``reply`` replaces the normal answer, e.g.
    ``"451 4.3.0 try later"``; ``drop`` closes the connection instead of answering;
    ``delay`` waits that many seconds first. ``recipient`` limits the rule to one
    address (``None``: every call); ``times`` to the first N matching commands
    (``None``: forever).
    """

    stage: Stage
    reply: str | None = None
    drop: bool = False
    delay: float = 0.0
    recipient: str | None = None
    times: int | None = None


@dataclass(slots=True)
class Received:
    """One message whose whole text reached the server, and what the server answered.

    ``reply`` is ``None`` when the server dropped the connection instead of replying.
    """

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    reply: str | None
    login: str | None = None  # the AUTH user of the session, if it logged in

    @property
    def accepted(self) -> bool:
        return self.reply is not None and self.reply.startswith("2")

    @property
    def message(self) -> email.message.Message:
        return email.message_from_bytes(self.data)


@dataclass(slots=True)
class TlsFiles:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this certificate (hostname checked too)."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_tls_files(folder: Path) -> TlsFiles:
    """Generate a throwaway certificate with openssl (an EC key: fast to make)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return TlsFiles(cert, key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class _Script:
    """The rules and what was seen, shared between the test thread and the server thread."""

    rules: list[tuple[Rule, list[int]]] = field(default_factory=list)  # rule, [uses left or -1]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, stage: Stage, recipients: list[str]) -> Rule | None:
        with self.lock:
            for rule, left in self.rules:
                if rule.stage != stage or left[0] == 0:
                    continue
                if rule.recipient is not None and rule.recipient not in recipients:
                    continue
                if left[0] > 0:
                    left[0] -= 1
                return rule
        return None


class _Handler:
    """aiosmtpd handler hooks: record, then answer as the script says."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.sink.auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        if self.sink.greeting is not None:  # went down while this session was open
            if server.transport is not None:
                server.transport.write(f"{self.sink.greeting}\r\n".encode())
                server.transport.close()
            await asyncio.sleep(3600)  # aiosmtpd cancels this when it sees the connection lost
        with self.sink._script.lock:
            self.sink.mail_options.append(list(options))
            self.sink.peers.add(session.peer)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return await self._answer(server, "mail", [], "250 OK")

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.sink._script.lock:
            self.sink.rcpt_attempts[address] += 1
        answer = await self._answer(server, "rcpt", [address], "250 OK")
        if answer.startswith("2"):
            envelope.rcpt_tos.append(address)
        return answer

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        data = bytes(content) if self.sink.keep_text else b""
        received = Received(str(envelope.mail_from), list(envelope.rcpt_tos), data, None, login)
        with self.sink._script.lock:
            self.sink.received.append(received)
        rule = self.sink._script.take("data", received.rcpt_tos)
        if rule is not None and rule.drop:
            await self._apply(server, rule, "")  # never returns: the connection is gone
        answer = await self._apply(server, rule, "250 OK: queued")
        received.reply = answer
        self.sink._count_accepted(answer)
        return answer

    async def _answer(self, server: SMTP, stage: Stage, recipients: list[str], normal: str) -> str:
        return await self._apply(server, self.sink._script.take(stage, recipients), normal)

    async def _apply(self, server: SMTP, rule: Rule | None, normal: str) -> str:
        if rule is None:
            return normal
        if rule.delay:
            await asyncio.sleep(rule.delay)
        if rule.drop:
            if server.transport is not None:
                server.transport.close()
            await asyncio.sleep(3600)  # aiosmtpd cancels this when it sees the connection lost
        return rule.reply or normal


class _Server(SMTP):
    """aiosmtpd's server, able to be down: 421 or silence at connect, STARTTLS that breaks."""

    def __init__(self, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sink = handler.sink

    async def _handle_client(self) -> None:
        greeting = self.sink.greeting
        if greeting is None:
            await super()._handle_client()
        elif greeting == SILENT:
            await asyncio.sleep(3600)  # cancelled when the client gives up and closes
        else:
            await self.push(greeting)
            if self.transport is not None:
                self.transport.close()

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if not self.sink.break_starttls:
            await super().smtp_STARTTLS(arg)
            return
        # Agree, then answer the client's TLS hello with plain text (a broken middlebox).
        await self.push("220 Ready to start TLS")
        await self._reader.read(1)
        if self.transport is not None:
            self.transport.write(b"this is not TLS\r\n")
            self.transport.close()


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _Server(self.handler, **self.SMTP_kwargs)


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    expected = (USERNAME.encode(), PASSWORD.encode())
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == expected
    return AuthResult(success=ok, handled=False, auth_data=data)  # not handled: aiosmtpd says 535


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that records what it receives; a context manager.

    ``security`` is ``none``, ``starttls`` (STARTTLS required before MAIL) or ``tls``
    (implicit TLS), the latter two needing ``tls``. ``auth=True`` requires AUTH
    PLAIN or LOGIN as :data:`USERNAME` / :data:`PASSWORD` (allowed without TLS: loopback).
    ``smtputf8=False`` stops offering SMTPUTF8 (non-ASCII addresses then cannot be sent).

    Outages, switchable while the server runs: ``greeting`` set to a reply (e.g.
    :data:`DOWN`) answers every new connection with it and closes, and cuts open
    sessions at their next MAIL; :data:`SILENT` accepts connections and never greets.
    ``break_starttls`` answers STARTTLS with 220 and then plain text instead of TLS.

    ``keep_text=False`` records envelopes and replies but not message texts: for tests
    that only count who got what, over tens of thousands of messages.
    """

    def __init__(
        self,
        *,
        security: Security = "none",
        tls: TlsFiles | None = None,
        auth: bool = False,
        smtputf8: bool = True,
        keep_text: bool = True,
    ) -> None:
        if security != "none" and tls is None:
            raise ValueError("security 'starttls' and 'tls' need TlsFiles")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.security = security
        self.auth = auth
        self.tls = tls
        self.smtputf8 = smtputf8
        self.keep_text = keep_text
        self.received: list[Received] = []
        self.rcpt_attempts: Counter[str] = Counter()
        self.mail_options: list[list[str]] = []
        self.peers: set[Any] = set()
        self.greeting: str | None = None
        self.break_starttls = False
        self._down_after: tuple[int, str] | None = None
        self._script = _Script()
        self._controller = _Controller(_Handler(self), hostname=self.host, port=self.port, **self._options())

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "server_hostname": "sink.test",
            "ready_timeout": 10.0,
            "enable_SMTPUTF8": self.smtputf8,
        }
        if self.tls is not None and self.security == "starttls":
            options.update(tls_context=self.tls.server_context(), require_starttls=True)
        elif self.tls is not None and self.security == "tls":
            options.update(ssl_context=self.tls.server_context())
        if self.auth:
            # AUTH is enforced in handle_MAIL rather than with auth_required=True, which
            # warns on every start when TLS is not required too (fine on loopback).
            options.update(authenticator=_authenticate, auth_require_tls=False)
        return options

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- scripting and inspection ----------------------------------------------------

    def script(self, *rules: Rule) -> None:
        """Add rules; the first rule that matches a command (and has uses left) answers it."""
        with self._script.lock:
            for rule in rules:
                self._script.rules.append((rule, [-1 if rule.times is None else rule.times]))

    def go_down_after(self, count: int, greeting: str = DOWN) -> None:
        """Once ``count`` messages were accepted, set :attr:`greeting` (a mid-run outage).

        Happens once: setting ``greeting = None`` later brings the relay back for good.
        """
        with self._script.lock:
            self._down_after = (count, greeting)

    def _count_accepted(self, answer: str) -> None:
        with self._script.lock:
            if self._down_after is not None and answer.startswith("2"):
                count, greeting = self._down_after
                if sum(1 for r in self.received if r.accepted) >= count:
                    self.greeting, self._down_after = greeting, None  # once: it may come back

    def accepted(self) -> list[Received]:
        with self._script.lock:
            return [r for r in self.received if r.accepted]

    def accepted_per_recipient(self) -> Counter[str]:
        """How many accepted messages each recipient got."""
        return Counter(r for m in self.accepted() for r in m.rcpt_tos)

    def accepted_for(self, recipient: str) -> list[Received]:
        return [r for r in self.accepted() if recipient in r.rcpt_tos]

    def config(self, **overrides: Any) -> SmtpConfig:
        """An ``[smtp]`` config pointing at this server (with the right security and login).

        With ``auth`` the password is read from ``PUBLISHER_TEST_SMTP_PASSWORD``: set it
        with ``monkeypatch.setenv("PUBLISHER_TEST_SMTP_PASSWORD", PASSWORD)``.
        """
        values: dict[str, Any] = {"host": self.host, "port": self.port, "security": self.security}
        if self.auth:
            values.update(username=USERNAME, password_env="PUBLISHER_TEST_SMTP_PASSWORD")
        values.update(overrides)
        return SmtpConfig(**values)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """One self-signed certificate for the whole test session."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    """A plain (no TLS, no AUTH) recording SMTP server, fresh for each test."""
    with SmtpSink() as sink:
        yield sink
