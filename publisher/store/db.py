"""Engine creation and migrations: the one place that knows SQLite from PostgreSQL.

Migrations run at every start (``migrate``): a fresh machine needs no manual step, and
an upgraded install brings its schema along. SQLite runs in WAL mode with a busy
timeout so that the web server can read while a digest is being sent.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import URL, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from publisher.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` to the psycopg 3 driver we install."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def shown_url(url: str | URL) -> str:
    """``url`` for people and logs: a password in it, if any, as ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def make_engine(url: str, *, key: str = "storage.url") -> Engine:
    """Create an engine; make the SQLite folder; turn on WAL and foreign keys.

    ``key`` names where the URL came from in an error (``storage copy``'s target is not
    the config key).
    """
    url = normalise_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError) as e:
        raise StoreError(f"{key} {shown_url(url)!r}: {e}") from e
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    return engine


# Alembic keeps its running context in module globals: one migration per process at a time.
_MIGRATING = threading.Lock()
# pg_advisory_xact_lock key for "migrating this database" (the bytes "pubmigra").
_PG_MIGRATION_KEY = int.from_bytes(b"pubmigra", "big")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision.

    Several processes may start at once on a fresh store (``run`` and two ``worker``s):
    a lock across processes (a lock file beside the SQLite database, an advisory lock
    on PostgreSQL) makes the first one migrate and the others find the schema done.
    """
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with _MIGRATING, _sqlite_file_lock(engine), engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as e:
        raise StoreError(f"cannot migrate the store at {engine.url!r}: {e}") from e


@contextlib.contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
