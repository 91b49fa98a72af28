"""A sending worker's lease: its ``workers`` row, renewed by a heartbeat, and fencing.

While a worker sends, its row's ``lease_until`` moves forward every quarter of
``[delivery] lease``; the renewal also stores the worker's counts and last-seen time
(``digest status``). A worker must stop starting message texts (it is *fenced*) when

* a renewal finds its row expired or gone: another process found the lease lapsed
  and settled its deliveries, which may be on their way to another worker already; or
* renewals have failed (the store is unreachable) for half the lease: before the
  lease can lapse for the others, this worker has stopped taking work, and only the
  messages already going out finish (and are journaled).

Fencing is checked by the sender before each message is handed to the transport and
again right before its text goes out (publisher.ledger); the store fences too (a lost
worker's claims, records and start marks change nothing, publisher.store.issues).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from publisher.errors import LeaseError, PublisherError
from publisher.store import Store
from publisher.text import error_line

log = logging.getLogger("publisher.lease")

CountsFn = Callable[[], Mapping[str, int]]


class WorkerLease:
    """Register ``worker``, keep its lease while it runs, and say when it is fenced."""

    def __init__(self, store: Store, worker: str, lease: timedelta, counts: CountsFn | None = None) -> None:
        self.store = store
        self.worker = worker
        self.lease = lease
        self.counts: CountsFn = counts or dict
        # Renewed every quarter of the lease; fenced after half of it without a renewal:
        # one renewal may fail or be late (a busy host) without stopping the worker.
        self.every = lease.total_seconds() / 4
        self.grace = lease.total_seconds() / 2
        self._fenced: LeaseError | None = None
        self._last_ok = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Register the worker (its lease starts now) and start the heartbeat."""
        await asyncio.to_thread(
            self.store.workers.register, self.worker, socket.gethostname(), os.getpid(), self.lease
        )
        self._last_ok = time.monotonic()
        self._task = asyncio.create_task(self._beat(), name=f"lease {self.worker}")

    def check(self) -> None:
        """Raise LeaseError when this worker must start no new message."""
        if self._fenced is None and time.monotonic() - self._last_ok > self.grace:
            self._fence(f"the store could not be reached to renew its lease for {self.grace:g} s")
        if self._fenced is not None:
            raise self._fenced

    @property
    def fenced(self) -> LeaseError | None:
        try:
            self.check()
        except LeaseError as e:
            return e
        return None

    def lose(self, why: str) -> None:
        """Fence the worker for a reason found elsewhere (the store refused its start marks)."""
        self._fence(why)

    def _fence(self, why: str) -> None:
        if self._fenced is None:
            self._fenced = LeaseError(f"worker {self.worker} stopped taking work: {why}")
            log.error("%s", self._fenced)

    async def _beat(self) -> None:
        while self._fenced is None:
            await asyncio.sleep(self.every)
            # Counted from before the call: the store dates the new lease from when it
            # ran the UPDATE, which may be well before a slow answer arrives here.
            asked = time.monotonic()
            try:
                async with asyncio.timeout(self.every):
                    renewed = await asyncio.to_thread(
                        self.store.workers.renew, self.worker, self.lease, dict(self.counts())
                    )
            except (TimeoutError, SQLAlchemyError, OSError, PublisherError) as e:
                log.warning("worker %s: cannot renew its lease: %s", self.worker, error_line(e))
                if self.fenced is not None:  # failing for longer than the grace: stop here
                    return
                continue
            if not renewed:
                self._fence("another process found its lease lapsed and settled its deliveries")
                return
            self._last_ok = asked

    async def stop(self, *, ended: bool) -> None:
        """Stop the heartbeat; with ``ended`` (it holds no delivery any more) mark the row ended."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if ended:
            try:
                await asyncio.to_thread(self.store.workers.end, self.worker, dict(self.counts()))
            except (SQLAlchemyError, OSError, PublisherError) as e:
                log.warning("worker %s: cannot record its end: %s", self.worker, error_line(e))
