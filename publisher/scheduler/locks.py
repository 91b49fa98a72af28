"""Cross-process locks that make one process per store the scheduler.

Two daemons on one store would each fire every job; the lock lets exactly one of
them schedule while the others serve the web and retry. Each lock is freed by the
operating system or the database when its holder dies, so a crash never leaves the
store without a scheduler for good.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from publisher.errors import SchedulerError
from publisher.store import Store

# pg_try_advisory_lock(class, object) of "the scheduler of this store": the class is the
# bytes "pubs"; the object is the hash of the store's schema, so publishers that keep
# their stores in different schemas of one database each have a scheduler.
PG_LOCK_KEY = int.from_bytes(b"pubs", "big")


class SchedulerLock(Protocol):
    """Held by the one process that schedules; others serve the web and retry."""

    description: str

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


class NoLock:
    """For an in-memory SQLite store: nobody else can share it."""

    description = "in-memory store (no lock needed)"

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


class FileLock:
    """An exclusive flock on a file beside the SQLite database; the kernel frees it at death."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"lock file {path}"
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

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class AdvisoryLock:
    """pg_try_advisory_lock on a connection of its own, held for the process lifetime.

    PostgreSQL frees a session lock when its connection ends, so a dead daemon's lock
    goes with it.
    """

    def __init__(self, engine: Engine, key: int = PG_LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self.description = (
            f"PostgreSQL advisory lock {key} on {engine.url.render_as_string(hide_password=True)}"
        )
        self._conn: Connection | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            return True
        try:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            got = bool(
                conn.execute(
                    text("SELECT pg_try_advisory_lock(:k, hashtext(current_schema()))"), {"k": self.key}
                ).scalar()
            )
        except SQLAlchemyError as e:
            raise SchedulerError(f"cannot take the scheduler lock: {e}") from e
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(SQLAlchemyError):
                self._conn.execute(
                    text("SELECT pg_advisory_unlock(:k, hashtext(current_schema()))"), {"k": self.key}
                )
            self._conn.close()
            self._conn = None


def scheduler_lock(store: Store) -> SchedulerLock:
    """The lock that makes ``store``'s scheduler unique."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:":
            return NoLock()
        return FileLock(Path(database + ".scheduler.lock"))
    return AdvisoryLock(store.engine)
