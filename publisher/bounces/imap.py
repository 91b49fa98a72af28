"""Bounce reports read from an IMAP mailbox: the :class:`Mailbox` of ``[bounces] imap``.

Many sites cannot point a ``bounces+*`` address at a Maildir on the publisher's machine,
but have a mailbox on an IMAP server. :class:`ImapMailbox` reads the *unseen* messages
of ``folder`` and, once the store has recorded what a report did
(:meth:`ImapMailbox.settle` is called only after the commit), moves it out of the way:

* processed: flagged ``\\Seen`` and moved to ``processed_folder``;
* unmatched (no valid token, nobody we mailed): moved to ``unmatched_folder``, unseen,
  for an admin to look at;
* unparsed: moved to ``unparsed_folder``, unseen.

A crash between the commit and the move leaves the report unseen in ``folder``; the next
run reads it again and the store, idempotent by the report's Message-ID, changes
nothing: no report is lost and none counts twice.

The move is the server's MOVE (RFC 6851) when it advertises it, else COPY, ``\\Deleted``
and an expunge of that one message (UID EXPUNGE, RFC 4315, when the server has UIDPLUS;
otherwise a plain EXPUNGE, which also removes other messages of ``folder`` that a client
flagged ``\\Deleted`` and left there). Missing folders are created (and subscribed, so
mail clients show them). Messages are addressed by UID, never by sequence number, so
other clients working on the folder at the same time cannot make us move the wrong one.

Bounds: every network operation has a deadline (:data:`TIMEOUT`, connect and each read
or write). Reports are fetched one at a time, never a whole folder at once, and a report
larger than ``mailboxes.MAX_REPORT_BYTES`` is read only up to one byte past that size
(as the Maildir does), which the processing sends to ``unparsed_folder`` for an admin.
Reading does not mark a report seen (``BODY.PEEK``): only :meth:`settle` changes the
mailbox.

The password comes from the environment variable ``password_env`` names, at connect
time. TLS is verified against the system's trust store (``tls_context`` replaces it, for
a private CA); ``security = "none"`` sends the password in clear and is meant for a
server on the same machine.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from publisher.bounces.mailboxes import MAX_REPORT_BYTES, MailboxMessage
from publisher.config import ImapMailboxConfig
from publisher.errors import ConfigError, ReportError
from publisher.models import ReportOutcome

log = logging.getLogger("publisher.bounces")
# IMAPClient logs every connection close at INFO and the protocol at DEBUG: noise in the
# one-line output of `bounces process`. Our own messages say what matters.
logging.getLogger("imapclient").setLevel(logging.WARNING)

#: Seconds allowed to connect, and to each read or write on the connection.
TIMEOUT = 30.0
#: UIDs whose sizes are asked for in one command.
SIZE_BATCH = 200

_SEEN = b"\\Seen"
_DELETED = b"\\Deleted"
_T = TypeVar("_T")


class ImapMailbox:
    """The ``[bounces] imap`` mailbox; connects on first use, :meth:`close` logs out."""

    def __init__(
        self,
        config: ImapMailboxConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.config = config
        self.tls_context = tls_context
        self.timeout = timeout
        self.where = f"IMAP mailbox {config.username}@{config.host}:{config.port}"
        self._client: Any = None  # imapclient.IMAPClient (untyped library)
        self._folders: set[str] = set()
        self._can_move = False
        self._uidplus = False

    # -- connection -------------------------------------------------------------------

    def _password(self) -> str:
        password = self.config.password
        if not password:
            raise ConfigError(
                f"[bounces] imap.password_env: the environment variable {self.config.password_env} is "
                f"not set; put the password of {self.config.username!r} on {self.config.host} in it"
            )
        return password

    def _connected(self) -> Any:
        if self._client is not None:
            return self._client
        password = self._password()
        cfg = self.config
        context = self.tls_context or ssl.create_default_context()
        timeout = imapclient.SocketTimeout(connect=self.timeout, read=self.timeout)
        client = self._call(
            "connect",
            lambda: imapclient.IMAPClient(
                cfg.host, cfg.port, ssl=cfg.security == "tls", ssl_context=context, timeout=timeout
            ),
        )
        try:
            if cfg.security == "starttls":
                self._call("STARTTLS", lambda: client.starttls(context))
            self._call("LOGIN", lambda: client.login(cfg.username, password))
            self._can_move = self._call("CAPABILITY", lambda: client.has_capability("MOVE"))
            self._uidplus = self._call("CAPABILITY", lambda: client.has_capability("UIDPLUS"))
        except BaseException:
            _quietly(client.shutdown)
            raise
        self._client = client
        return client

    def _call(self, what: str, action: Callable[[], _T]) -> _T:
        """Run one IMAP exchange; any failure becomes one :class:`ReportError` line."""
        try:
            return action()
        except LoginError as e:
            raise ReportError(
                f"{self.where}: login refused ({_reason(e)}); check [bounces] imap.username and "
                f"the password in {self.config.password_env}"
            ) from e
        except (IMAPClientError, OSError) as e:  # socket.timeout and ssl.SSLError are OSErrors
            if isinstance(e, socket.timeout | TimeoutError):
                cause = f"no answer within {self.timeout:g} s"
            elif isinstance(e, ssl.SSLError):
                cause = f"TLS failed ({e}); check [bounces] imap.security and the server's certificate"
            else:
                cause = _reason(e)
            raise ReportError(f"{self.where}: {what} failed: {cause}") from e

    def close(self) -> None:
        """Log out; a connection that already broke is just dropped."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except (IMAPClientError, OSError):
                _quietly(client.shutdown)

    # -- the Mailbox protocol ---------------------------------------------------------

    def fetch_new(self) -> Iterator[MailboxMessage]:
        """Every unseen message of ``folder``, oldest first, without marking it seen."""
        client = self._connected()
        folder = self.config.folder
        self._call(f"opening [bounces] imap.folder {folder!r}", lambda: client.select_folder(folder))
        uids: list[int] = sorted(self._call("SEARCH UNSEEN", lambda: client.search(["UNSEEN"])))
        for start in range(0, len(uids), SIZE_BATCH):
            batch = uids[start : start + SIZE_BATCH]
            sizes = self._call("FETCH sizes", functools.partial(client.fetch, batch, ["RFC822.SIZE"]))
            for uid in batch:
                if uid not in sizes:  # expunged by another client since the search
                    continue
                raw = self._body(client, uid, int(sizes[uid][b"RFC822.SIZE"]))
                if raw is not None:
                    yield MailboxMessage(key=str(uid), raw=raw)

    def _body(self, client: Any, uid: int, size: int) -> bytes | None:
        if size > MAX_REPORT_BYTES:
            log.warning(
                "%s: report UID %d in %r is %d bytes, over the %d read; it goes to %r",
                self.where,
                uid,
                self.config.folder,
                size,
                MAX_REPORT_BYTES,
                self.config.unparsed_folder,
            )
            part = f"BODY.PEEK[]<0.{MAX_REPORT_BYTES + 1}>"
        else:
            part = "BODY.PEEK[]"
        data = self._call(f"FETCH UID {uid}", lambda: client.fetch([uid], [part]))
        if uid not in data:
            return None
        for name, value in data[uid].items():
            if bytes(name).startswith(b"BODY[]") and value is not None:
                return bytes(value)
        return None

    def settle(self, key: str, outcome: ReportOutcome) -> None:
        """Move the report ``key`` (its UID) to the folder for ``outcome``."""
        client = self._connected()
        uid = int(key)
        target = {
            ReportOutcome.PROCESSED: self.config.processed_folder,
            ReportOutcome.UNMATCHED: self.config.unmatched_folder,
            ReportOutcome.UNPARSED: self.config.unparsed_folder,
        }[outcome]
        if outcome is ReportOutcome.PROCESSED or target == self.config.folder:
            # Seen: read by the publisher. A report left in ``folder`` (an admin's
            # choice) must be seen too, or every run would read it again.
            self._call(f"STORE UID {uid} +FLAGS \\Seen", lambda: client.add_flags([uid], [_SEEN]))
        if target == self.config.folder:
            return
        self._ensure_folder(client, target)
        if self._can_move:
            self._call(f"MOVE UID {uid} to {target!r}", lambda: client.move([uid], target))
            return
        self._call(f"COPY UID {uid} to {target!r}", lambda: client.copy([uid], target))
        self._call(f"STORE UID {uid} +FLAGS \\Deleted", lambda: client.add_flags([uid], [_DELETED]))
        if self._uidplus:
            self._call(f"UID EXPUNGE {uid}", lambda: client.uid_expunge([uid]))
        else:
            self._call("EXPUNGE", lambda: client.expunge())

    def _ensure_folder(self, client: Any, name: str) -> None:
        if name in self._folders:
            return
        if not self._call(f"LIST {name!r}", lambda: client.folder_exists(name)):
            self._call(f"CREATE {name!r}", lambda: client.create_folder(name))
            log.info("%s: created folder %r", self.where, name)
            # Subscribed, so that mail clients which list subscribed folders show it.
            _quietly(lambda: client.subscribe_folder(name))
        self._folders.add(name)


def _reason(error: BaseException) -> str:
    """The server's words, on one line (imaplib puts bytes reprs in its messages)."""
    text = str(error).strip()
    if text.startswith(("b'", 'b"')) and text.endswith(("'", '"')):
        text = text[2:-1]
    return " ".join(text.split()) or type(error).__name__


def _quietly(action: Callable[[], object]) -> None:
    with contextlib.suppress(IMAPClientError, OSError):
        action()
