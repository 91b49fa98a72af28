"""Sending workers: one row per sending process, its lease and its running counts.

A worker registers when it starts sending and renews its lease while it works. When a
lease lapses (the host died, or lost the database), another process *wins* the
worker with one conditional UPDATE (``expired`` set only if it was not yet set and the
lease is over): exactly one process settles the lost worker's deliveries, and the
worker, if it still runs, fails its next renewal and stops (publisher.ledger).

Leases are timed by the database's clock, not the hosts': several hosts' clocks may
differ by more than a short lease, the database's is one clock for all of them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, and_, case, delete, exists, func, insert, or_, select, update

from publisher.models import DeliveryStatus
from publisher.store.tables import deliveries, workers

PRUNE_EVERY_SECONDS = 3600.0

COUNTS = ("sent", "deferred", "failed", "bounced", "unknown", "skipped")


@dataclass(slots=True, frozen=True)
class WorkerProgress:
    """One worker's part of one issue, as ``digest status`` shows it.

    ``state`` is ``alive`` (lease current), ``ended`` (stopped cleanly) or ``expired``
    (lease lapsed: the process or its host died, or lost the database). ``rate`` is
    the issue's messages it sent per second, between the first and the last of them.
    """

    worker: str
    host: str
    pid: int
    sent: int
    rate: float
    last_seen: datetime | None
    state: str


@dataclass(slots=True, frozen=True)
class WorkerRow:
    """A registered worker as ``status`` lists it."""

    worker: str
    host: str
    pid: int
    started: datetime
    last_seen: datetime
    state: str
    sent: int


def db_now(conn: Connection) -> datetime:
    """The database's clock (PostgreSQL); SQLite serves one host, whose clock it is."""
    if conn.dialect.name == "sqlite":
        return datetime.now(UTC)
    now: datetime = conn.execute(select(func.clock_timestamp())).scalar_one()
    return now.astimezone(UTC)


def usable(conn: Connection, worker: str) -> bool:
    """Inside a claim: whether ``worker`` may take rows (not expired nor ended).

    The row is locked FOR SHARE until the claim commits, so a process winning the
    worker waits for the claim and then settles the rows it took too. A worker with
    no row (a direct caller, a test) may claim.
    """
    q = select(workers.c.expired, workers.c.ended).where(workers.c.id == worker)
    if conn.dialect.name != "sqlite":
        q = q.with_for_update(read=True)
    row = conn.execute(q).first()
    return row is None or (not row.expired and row.ended is None)


def _state(expired: bool, ended: datetime | None, lease_until: datetime, now: datetime) -> str:
    if expired:
        return "expired"
    if ended is not None:
        return "ended"
    return "expired" if lease_until < now else "alive"


class WorkerStore:
    """Register, renew, end and expire sending workers; report their progress."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pruned_at: float | None = None  # monotonic time of this process's last prune

    def register(self, worker: str, host: str, pid: int, lease: timedelta) -> None:
        with self.engine.begin() as conn:
            now = db_now(conn)
            conn.execute(
                insert(workers).values(
                    id=worker,
                    host=host[:255],
                    pid=pid,
                    started=now,
                    last_seen=now,
                    lease_until=now + lease,
                    expired=False,
                    **dict.fromkeys(COUNTS, 0),
                )
            )

    def renew(self, worker: str, lease: timedelta, counts: Mapping[str, int]) -> bool:
        """Extend the lease and store the counts; False when the worker lost it (or ended)."""
        with self.engine.begin() as conn:
            now = db_now(conn)
            result = conn.execute(
                update(workers)
                .where(workers.c.id == worker, workers.c.expired.is_(False), workers.c.ended.is_(None))
                .values(last_seen=now, lease_until=now + lease, **_counts(counts))
            )
            return result.rowcount == 1

    def end(self, worker: str, counts: Mapping[str, int]) -> None:
        """The worker stopped and holds no delivery any more."""
        with self.engine.begin() as conn:
            now = db_now(conn)
            conn.execute(
                update(workers)
                .where(workers.c.id == worker, workers.c.ended.is_(None), workers.c.expired.is_(False))
                .values(ended=now, last_seen=now, **_counts(counts))
            )

    def lapsed(self) -> list[str]:
        """Workers whose lease is over and whom nobody has won yet."""
        with self.engine.connect() as conn:
            now = db_now(conn)
            q = select(workers.c.id).where(
                workers.c.ended.is_(None), workers.c.expired.is_(False), workers.c.lease_until < now
            )
            return [r[0] for r in conn.execute(q)]

    def expire(self, worker: str, *, lapsed_only: bool = True) -> bool:
        """Win ``worker``: True for exactly one caller, who then settles its deliveries.

        ``lapsed_only=False`` is for a worker known dead otherwise (its journal's lock is
        free on this host): it is won even before its lease ends.
        """
        with self.engine.begin() as conn:
            now = db_now(conn)
            condition = and_(workers.c.id == worker, workers.c.expired.is_(False), workers.c.ended.is_(None))
            if lapsed_only:
                condition = and_(condition, workers.c.lease_until < now)
            result = conn.execute(update(workers).where(condition).values(expired=True))
            return result.rowcount == 1

    def prune(self, older_than: timedelta) -> int:
        """Forget workers that stopped (ended or expired) longer than ``older_than`` ago.

        Every daemon-mode send registers a row, so without this the table only grows.
        A row still named by a delivery in flight is kept (its claims are not settled).
        Recovery calls this before every poll of every worker; the DELETE runs at most
        once an hour per process (rows are kept 90 days: an hour more changes nothing).
        """
        if self._pruned_at is not None and time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
            return 0
        self._pruned_at = time.monotonic()
        with self.engine.begin() as conn:
            cutoff = db_now(conn) - older_than
            in_flight = exists().where(
                deliveries.c.claimed_by == workers.c.id, deliveries.c.status == DeliveryStatus.SENDING.value
            )
            result = conn.execute(
                delete(workers).where(
                    or_(workers.c.ended.is_not(None), workers.c.expired.is_(True)),
                    workers.c.last_seen < cutoff,
                    ~in_flight,
                )
            )
            return result.rowcount or 0

    def known(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are registered (claims from before leases existed are not)."""
        if not ids:
            return set()
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(select(workers.c.id).where(workers.c.id.in_(list(ids))))}

    def listing(self, *, alive_only: bool = False, limit: int = 50) -> list[WorkerRow]:
        """Registered workers, most recently seen first."""
        with self.engine.connect() as conn:
            now = db_now(conn)
            q = select(workers).order_by(workers.c.last_seen.desc()).limit(limit)
            if alive_only:
                q = q.where(
                    workers.c.ended.is_(None), workers.c.expired.is_(False), workers.c.lease_until >= now
                )
            return [
                WorkerRow(
                    r.id,
                    r.host,
                    r.pid,
                    r.started,
                    r.last_seen,
                    _state(r.expired, r.ended, r.lease_until, now),
                    r.sent,
                )
                for r in conn.execute(q)
            ]

    def progress(self, issue_ids: Sequence[int]) -> dict[int, list[WorkerProgress]]:
        """Per issue, each worker that sent (or holds) some of its deliveries, busiest first."""
        if not issue_ids:
            return {}
        is_sent = deliveries.c.status == DeliveryStatus.SENT.value
        sent = func.sum(case((is_sent, 1), else_=0))
        # The rate over sent messages only: rows settled later (a recovery) would stretch it.
        first = func.min(case((is_sent, func.coalesce(deliveries.c.started_at, deliveries.c.claimed_at))))
        last = func.max(case((is_sent, deliveries.c.updated_at)))
        w = workers.c
        per = (  # one group per worker of each issue, with what its row says
            deliveries.c.issue_id,
            deliveries.c.claimed_by,
            w.host,
            w.pid,
            w.last_seen,
            w.lease_until,
            w.expired,
            w.ended,
        )
        q = (
            select(*per, sent.label("sent"), first.label("first"), last.label("last"))
            .join(workers, w.id == deliveries.c.claimed_by)
            .where(deliveries.c.issue_id.in_(list(issue_ids)))
            .group_by(*per)
        )
        found: dict[int, list[WorkerProgress]] = {}
        with self.engine.connect() as conn:
            now = db_now(conn)
            for r in conn.execute(q):
                first_at, last_at = _aware(r.first), _aware(r.last)
                seconds = (last_at - first_at).total_seconds() if first_at and last_at else 0.0
                count = int(r.sent or 0)
                found.setdefault(r.issue_id, []).append(
                    WorkerProgress(
                        r.claimed_by,
                        r.host,
                        r.pid,
                        count,
                        round(count / seconds, 1) if seconds > 0 else 0.0,
                        _aware(r.last_seen),
                        _state(r.expired, r.ended, _aware(r.lease_until) or now, now),
                    )
                )
        for rows in found.values():
            rows.sort(key=lambda p: (-p.sent, p.worker))
        return found


def _counts(counts: Mapping[str, int]) -> dict[str, int]:
    return {name: int(counts.get(name, 0)) for name in COUNTS}


def _aware(value: object) -> datetime | None:
    """Aggregates (min/max) skip the column type's conversion: SQLite hands back text."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
