"""Cross-process locks that make one process per store the scheduler.

Two daemons on one store would each fire every job; the lock lets exactly one of
them schedule while the others serve the web and retry. Each lock is freed by the
operating system or the database when its holder dies, so a crash never leaves the
store without a scheduler for good.

On PostgreSQL the daemons may run on different hosts, where "freed when its holder
dies" needs help: a host that vanishes (power cut, network partition) closes no TCP
connection, so its session and lock could linger for hours. Three things bound that
by ``[scheduler] takeover`` (:class:`Timings`):

* the holder checks every few seconds, on the lock's own connection, that the lock is
  still its own (:meth:`AdvisoryLock.check`); a dropped connection or terminated
  backend makes it stop scheduling at once;
* the lock connection uses TCP keepalives and ``tcp_user_timeout`` on both ends, so
  PostgreSQL ends a vanished client's session, and the holder notices a vanished
  server, within about half of ``takeover``;
* a waiting daemon ends (``pg_terminate_backend``) a holder's lock session that has
  been silent for two thirds of ``takeover``: a live holder checks four times as often,
  and gives up by itself after a third of it without an answer. Two thirds, not all of
  it, so that the next retry still falls within ``takeover`` of the holder's last word.
  That needs the same database role, or ``pg_read_all_stats`` and ``pg_signal_backend``;
  without them the keepalives alone free the lock.

Fire-time claims (:meth:`publisher.store.runs.RunStore.claim_fire`) make sure that two
daemons overlapping during a handover never serve one fire time twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from publisher.errors import SchedulerError
from publisher.store import Store

# pg_try_advisory_lock(class, object) of "the scheduler of this store": the class is the
# bytes "pubs"; the object is the hash of the store's schema, so publishers that keep
# their stores in different schemas of one database each have a scheduler.
PG_LOCK_KEY = int.from_bytes(b"pubs", "big")
# The lock session's application_name starts with this: pg_stat_activity shows who
# schedules, and a waiting daemon only ever ends sessions that carry it.
APPLICATION_NAME = "publisher scheduler"
DEFAULT_TAKEOVER = timedelta(seconds=30)

log = logging.getLogger("publisher.scheduler")


@dataclass(frozen=True, slots=True)
class Timings:
    """Every interval of the scheduler handover, derived from ``[scheduler] takeover``.

    A waiting daemon retries the lock three times per ``takeover``; the holder checks
    its lock well inside that (at most every 5 s) and gives up on a check that gets no
    answer within a third of it, before a waiting daemon calls it silent (two thirds).
    """

    takeover: float

    @property
    def retry(self) -> float:
        return self.takeover / 3

    @property
    def check_every(self) -> float:
        return min(5.0, self.takeover / 6)

    @property
    def check_timeout(self) -> float:
        return self.takeover / 3

    @property
    def silent_after(self) -> float:
        return self.takeover * 2 / 3

    @property
    def statement_timeout_ms(self) -> int:
        return max(500, int(self.check_every * 1000))

    @property
    def keepalive_idle(self) -> int:
        return max(1, round(self.takeover / 6))

    @property
    def keepalive_interval(self) -> int:
        return max(1, round(self.takeover / 12))

    keepalive_count = 3

    @property
    def tcp_user_timeout_ms(self) -> int:
        return int(self.takeover * 1000 / 3)

    @classmethod
    def of(cls, takeover: timedelta) -> Timings:
        return cls(takeover.total_seconds())


class SchedulerLock(Protocol):
    """Held by the one process that schedules; others serve the web and retry."""

    description: str
    # Why the last check() failed, for the log line that says the lock is lost.
    why_lost: str

    def acquire(self) -> bool: ...

    def check(self) -> bool:
        """Whether the lock is still held; False means lost (and already let go)."""
        ...

    def release(self) -> None: ...


class NoLock:
    """For an in-memory SQLite store: nobody else can share it."""

    description = "in-memory store (no lock needed)"
    why_lost = ""

    def acquire(self) -> bool:
        return True

    def check(self) -> bool:
        return True

    def release(self) -> None:
        return None


class FileLock:
    """An exclusive flock on a file beside the SQLite database; the kernel frees it at death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"lock file {path}"
        self.why_lost = ""
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def check(self) -> bool:
        """A flock lives as long as its file descriptor: nobody can take it away."""
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class AdvisoryLock:
    """pg_try_advisory_lock on a connection of its own, held for the process lifetime.

    PostgreSQL frees a session lock when its connection ends, so a dead daemon's lock
    goes with it; the module docstring says how a vanished host's lock is freed too.
    The lock's connection comes from an engine of its own (no pool) because it carries
    its own session settings: keepalives, a statement timeout, an application_name.
    Not thread-safe: the daemon calls it from one thread at a time.
    """

    def __init__(
        self, engine: Engine, key: int = PG_LOCK_KEY, takeover: timedelta = DEFAULT_TAKEOVER
    ) -> None:
        self.key = key
        self.timings = Timings.of(takeover)
        self.name = f"{APPLICATION_NAME} {socket.gethostname()}:{os.getpid()}"[:63]
        self.description = (
            f"PostgreSQL advisory lock {key} on {engine.url.render_as_string(hide_password=True)}"
        )
        self.why_lost = ""
        self._blind_warned = False
        t = self.timings
        self.engine = create_engine(
            engine.url,
            poolclass=NullPool,
            connect_args={
                "application_name": self.name,
                "connect_timeout": max(2, round(t.check_timeout)),
                "keepalives": 1,
                "keepalives_idle": t.keepalive_idle,
                "keepalives_interval": t.keepalive_interval,
                "keepalives_count": t.keepalive_count,
                "tcp_user_timeout": t.tcp_user_timeout_ms,
            },
        )
        self._conn: Connection | None = None

    def _connect(self) -> Connection:
        """A session whose server end also notices a vanished client (the GUCs are user-settable)."""
        t = self.timings
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        for setting, value in (
            ("statement_timeout", t.statement_timeout_ms),
            ("tcp_keepalives_idle", t.keepalive_idle),
            ("tcp_keepalives_interval", t.keepalive_interval),
            ("tcp_keepalives_count", t.keepalive_count),
            ("tcp_user_timeout", t.tcp_user_timeout_ms),
        ):
            try:
                conn.execute(text(f"SET {setting} = {int(value)}"))
            except SQLAlchemyError as e:  # e.g. tcp_user_timeout before PostgreSQL 12
                log.debug("scheduler lock session: cannot set %s: %s", setting, e)
        return conn

    def acquire(self) -> bool:
        """Take the lock, ending first the session of a holder silent for too long (``silent_after``)."""
        if self._conn is not None:
            return True
        try:
            conn = self._connect()
            got = self._try(conn)
            if not got and self._end_silent_holder(conn):
                deadline = time.monotonic() + 3
                while not got and time.monotonic() < deadline:
                    time.sleep(0.1)
                    got = self._try(conn)
        except SQLAlchemyError as e:
            raise SchedulerError(f"cannot take the scheduler lock: {e}") from e
        if got:
            self._conn = conn
            self.why_lost = ""
        else:
            conn.close()
        return got

    def _try(self, conn: Connection) -> bool:
        return bool(
            conn.execute(
                text("SELECT pg_try_advisory_lock(:k, hashtext(current_schema()))"), {"k": self.key}
            ).scalar()
        )

    def holder(self, conn: Connection) -> dict[str, Any] | None:
        """The session holding the lock: pid, application_name, client address, seconds silent."""
        row = conn.execute(
            text(
                "SELECT a.pid, a.application_name, host(a.client_addr) AS addr,"
                " extract(epoch FROM clock_timestamp() - coalesce(a.state_change, a.backend_start))"
                " AS silent"
                " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
                " AND l.classid = CAST(CAST(:k AS integer) AS oid)"
                " AND l.objid = CAST(hashtext(current_schema()) AS oid)"
                " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"k": self.key},
        ).first()
        return dict(row._mapping) if row is not None else None

    def _end_silent_holder(self, conn: Connection) -> bool:
        """End the holder's session if it has been silent past ``silent_after``; True if ended.

        Only a session named like ours is ended: anything else holding the key is not a
        publisher scheduler that checks its lock, and must be left alone.
        """
        found = self.holder(conn)
        if found is None:
            return False
        if found["silent"] is None:  # another role's session, and no pg_read_all_stats
            if not self._blind_warned:
                self._blind_warned = True
                log.warning(
                    "cannot see whether the scheduler lock's holder (backend pid %s) is alive: it "
                    "connects as another database role; grant this one pg_read_all_stats and "
                    "pg_signal_backend to take over from a silent holder. Until then a vanished "
                    "holder's lock is freed only when PostgreSQL's TCP keepalives end its session",
                    found["pid"],
                )
            return False
        name, silent = str(found["application_name"] or ""), float(found["silent"])
        if not name.startswith(APPLICATION_NAME) or silent <= self.timings.silent_after:
            return False
        who = f"{name!r} (backend pid {found['pid']}, from {found['addr'] or 'a local socket'})"
        log.warning(
            "the scheduler lock's holder %s has been silent for %.0f s (more than %g s, two thirds "
            "of takeover=%gs): ending its session to take over",
            who, silent, self.timings.silent_after, self.timings.takeover,
        )  # fmt: skip
        try:
            ended = bool(conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": found["pid"]}).scalar())
        except SQLAlchemyError as e:
            log.error(
                "cannot end the silent scheduler session %s: %s; the database role needs to be the "
                "holder's or a member of pg_signal_backend. PostgreSQL frees the lock once TCP "
                "keepalives find the holder gone", who, str(e).splitlines()[0],
            )  # fmt: skip
            return False
        return ended

    def check(self) -> bool:
        """Confirm on the lock's own connection that this session still holds the lock.

        A dropped connection, a terminated backend, a timeout or a missing lock all mean
        lost: the connection is closed (``why_lost`` says why) and :meth:`acquire` starts
        afresh. Its query also keeps the session's ``state_change`` fresh, which is how a
        waiting daemon tells a live holder from a silent one.
        """
        if self._conn is None:
            self.why_lost = self.why_lost or "not holding the lock"
            return False
        try:
            held = self._conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND pid = pg_backend_pid() AND objsubid = 2"
                    " AND classid = CAST(CAST(:k AS integer) AS oid)"
                    " AND objid = CAST(hashtext(current_schema()) AS oid)"
                ),
                {"k": self.key},
            ).scalar()
        except SQLAlchemyError as e:
            self.why_lost = f"the lock's database connection failed: {str(e).splitlines()[0]}"
            self._drop()
            return False
        if not held:
            self.why_lost = "the lock's session no longer holds it"
            self._drop()
            return False
        return True

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.close()
            self._conn = None

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.execute(
                    text("SELECT pg_advisory_unlock(:k, hashtext(current_schema()))"), {"k": self.key}
                )
            self._drop()


def scheduler_lock(store: Store, takeover: timedelta = DEFAULT_TAKEOVER) -> SchedulerLock:
    """The lock that makes ``store``'s scheduler unique; ``takeover`` sets its timings."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:":
            return NoLock()
        return FileLock(Path(database + ".scheduler.lock"))
    return AdvisoryLock(store.engine, takeover=takeover)
