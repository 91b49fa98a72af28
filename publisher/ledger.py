"""The delivery ledger's hot path: claim, send, journal, record, recover.

Exactly-once across crashes without a database round trip per message:

* rows are claimed in batches and marked ``sending`` with this worker's id; the worker
  holds a lease on them (its ``workers`` row, renewed every quarter of ``[delivery]
  lease``, publisher.lease);
* before a message is handed to the transport its row carries a *start mark*
  (``deliveries.started_at``), written :data:`START_MARKS` rows ahead in one UPDATE;
* when the transport is about to write a message's text on an open connection (its
  ``on_start``: after the server's 354), ``S <id>`` is appended to the worker's journal
  file, and each SMTP outcome ``R <id> ...`` right after it arrives (``os.write`` on an
  O_APPEND file: a SIGKILL cannot lose it, the kernel has it);
* outcomes are written to the store in batches (every ``flush_every`` results and at
  least every :data:`FLUSH_SECONDS`); the journal is removed at a clean end.

**A worker that dies, its host still there.** The next sender on that host (each
sender runs :func:`recover` at its start, ``publisher worker`` before every poll) finds
the journal of the dead worker (its flock is free), records every outcome it holds,
marks ``started`` rows with no outcome as ``unknown`` (at most ``connections`` of them,
one per connection whose message text was going out: the server may have accepted it)
and puts the rest back to ``pending``. Nothing is sent twice and nobody is skipped.

**A lost host** (its journal gone with it, or unreachable): once the worker's lease
lapses, any process's :func:`recover` may win it (``UPDATE workers SET expired`` where
not yet expired and the lease is over: one winner) and settles its rows from the store
alone: rows without a start mark go back to ``pending`` (the worker never handed them
to the transport), rows with one become ``unknown``. Those unknowns are at most

    2 x START_MARKS (marked, not yet handed over) + [smtp] connections (queued or
    in flight) + the outcomes not yet written to the store (at most ``flush_every``,
    500, and about two FLUSH_SECONDS' worth of messages: the buffer and the write
    under way)

e.g. 128 + 4 + 500 at most, about 128 + 4 + 250 at 500 messages/s per worker. A lease
is timed by the database's clock.

**Fencing.** A worker whose lease was won by another process, or which could not renew
it for half the lease (the database unreachable), starts no new message text: its
next start raises LeaseError, the messages already going out finish and are journaled,
and the run ends with that error. The store fences it too: its claims, start marks,
``record`` and ``release`` only touch rows still ``sending`` and claimed by it, so a
settled row is never resent by the worker that lost it.

The same split ends a run that stops early without a crash (SIGTERM, or a relay
that cannot be connected to, greeted, secured or logged in to): messages pulled from
the queue but never started go back to ``pending``, untouched, so an outage puts
nobody in doubt. ``unknown`` means only "the text went out and no final reply came"
(or, for a lost host, "it may have").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from publisher.archive import issue_url
from publisher.bounces.verp import ReturnPath
from publisher.config import ListConfig, Settings
from publisher.errors import LeaseError, MailError, PublisherError, TemplateError
from publisher.i18n import normalise_language
from publisher.lease import WorkerLease
from publisher.mailer import OutgoingMessage, SendResult, make_transport
from publisher.messages import RenderedIssue, render_issue
from publisher.models import Clock, DeliveryStatus, StopFlag, Subscriber, SubscriptionStatus
from publisher.periods import period_label
from publisher.signing import DkimSigner
from publisher.store import Store
from publisher.store.issues import Claimed, IssueRow, Outcome
from publisher.subscriptions import set_status
from publisher.text import error_line

log = logging.getLogger("publisher.ledger")

STALE_CLAIM = timedelta(hours=6)
# How long `digest status` can still name the host and pid of a stopped sender.
WORKER_ROWS_KEPT = timedelta(days=90)
# Deliveries start-marked in the store per UPDATE, ahead of the transport; the next
# chunk is marked while one goes out, so at most twice this many marked rows are not
# handed over yet when a worker dies (they count in the unknown bound of a lost host,
# see the module docstring). Each marked row costs PostgreSQL about 30 us (a new row
# version in every index); 64 rows per UPDATE cost 5-8% of the sending rate on a 2-core
# host that also runs the database, 32 rows 12-20% (README, "Running on several machines").
START_MARKS = 64
# Outcomes are written to the store at least this often (and every ``flush_every``): what
# a lost host takes with it. Four small writes a second cost no measurable rate.
FLUSH_SECONDS = 0.25

# What a recovery writes on a started delivery that has no outcome.
STOPPED_TEXT = "sender stopped after the message text began to go out; not resent"
# What versions before the outage fix wrote there, also on messages never started
# (a relay outage): `digest requeue-unknown` looks for exactly this text.
LEGACY_STOPPED_TEXT = "sender stopped while this message was in flight; not resent"


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Journal:
    """An append-only, flock-held file of started and finished deliveries.

    ``S`` lines are written at once, when a message's text is about to go out on an
    open connection. ``R`` lines wait for the next ``S`` line (or :meth:`sync`) and go
    out in the same ``os.write``: one system call per message instead of two. A crash
    can lose only those waiting results, and a started delivery without a result is
    settled as unknown, never resent. Each waiting result freed a connection that has
    not started a new message text since (that start would have written them), so
    started-without-result deliveries still number at most the transport's connections.
    """

    def __init__(self, directory: Path, worker: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{worker}.journal"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._waiting: list[bytes] = []

    def started(self, delivery_id: int) -> None:
        self._waiting.append(b"S %d\n" % delivery_id)
        self.sync()

    def sync(self) -> None:
        """Write the waiting result lines."""
        if self._waiting:
            data = b"".join(self._waiting)
            self._waiting.clear()
            os.write(self.fd, data)

    def finished(self, outcome: Outcome) -> None:
        record = [
            outcome.delivery_id,
            outcome.status.value,
            outcome.code,
            outcome.text,
            outcome.at.isoformat(),
            outcome.attempts,
            outcome.next_attempt.isoformat() if outcome.next_attempt else None,
            outcome.message_id,
        ]
        self._waiting.append(b"R " + json.dumps(record, ensure_ascii=True).encode() + b"\n")

    def close(self, *, remove: bool) -> None:
        if remove:
            self.path.unlink(missing_ok=True)
        else:
            self.sync()  # kept for the next sender's recovery: it needs every result
        os.close(self.fd)


def read_journal(path: Path) -> tuple[set[int], dict[int, Outcome]]:
    """Parse a journal; a torn last line (killed mid-write) is ignored."""
    started: set[int] = set()
    finished: dict[int, Outcome] = {}
    for line in path.read_bytes().splitlines():
        try:
            if line.startswith(b"S "):
                started.add(int(line[2:]))
            elif line.startswith(b"R "):
                did, status, code, text, at, attempts, nxt, mid = json.loads(line[2:])
                finished[did] = Outcome(
                    did,
                    DeliveryStatus(status),
                    code,
                    text,
                    datetime.fromisoformat(at),
                    attempts,
                    datetime.fromisoformat(nxt) if nxt else None,
                    mid,
                )
        except (ValueError, TypeError):
            continue
    return started, finished


def recover(store: Store, directory: Path, now: datetime, me: str | None = None) -> dict[str, int]:
    """Settle the claims of dead workers (see module docstring); ``me`` is the caller's id.

    1. Journals in ``directory`` whose lock is free (their worker died on this host):
       applied, and the worker's row expired at once, lease or not. The caller's own
       journal is there only when an earlier round of this process could not settle
       (the store was out of reach): applied too, its row left alone.
    2. Workers whose lease lapsed: each is won by one process (an atomic UPDATE); the
       winner applies its journal when it is here, else settles from the store alone.
    3. Claims older than :data:`STALE_CLAIM` by ids with no ``workers`` row (made by a
       version before leases) and no journal here: unknown, as before.
    """
    counts = {"recorded": 0, "unknown": 0, "released": 0}
    if directory.is_dir():
        for path in sorted(directory.glob("*.journal")):
            _apply_journal(store, path, now, counts, expire=path.stem != me)
    for worker in store.workers.lapsed():
        if worker == me or not store.workers.expire(worker):
            continue  # renewed meanwhile, or another process won it
        journal = directory / f"{worker}.journal"
        if not (journal.exists() and _apply_journal(store, journal, now, counts, expire=False)):
            released, unknown = store.issues.settle_lost(worker, now, STOPPED_TEXT)
            counts["released"] += released
            counts["unknown"] += unknown
    stale = [
        worker
        for worker in store.issues.stale_workers(now - STALE_CLAIM)
        if not (directory / f"{worker}.journal").exists()
    ]
    for worker in sorted(set(stale) - store.workers.known(stale)):
        # Claimed long ago by a worker whose journal is not here: it may have sent.
        _settle(store, worker, set(store.issues.claimed_by(worker)), {}, now, counts)
    if any(counts.values()):
        log.warning("recovered claims of stopped senders: %s", counts)
    store.workers.prune(WORKER_ROWS_KEPT)
    return counts


def _apply_journal(store: Store, path: Path, now: datetime, counts: dict[str, int], *, expire: bool) -> bool:
    """Settle a dead worker's claims from its journal; False when its worker still holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False  # settled by another process of this host just now
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its worker is alive
        if expire:
            # Its lock is free: the worker is dead. Expire its row so that no other host
            # settles it from the store alone while this journal, which knows more, is applied.
            store.workers.expire(path.stem, lapsed_only=False)
        _settle(store, path.stem, *read_journal(path), now, counts)
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def _settle(
    store: Store,
    worker: str,
    started: set[int],
    finished: dict[int, Outcome],
    now: datetime,
    counts: dict[str, int],
) -> None:
    claimed = store.issues.claimed_by(worker)
    outcomes: list[Outcome] = []
    release: list[int] = []
    attempts = store.issues.attempts_of(claimed) if claimed else {}
    for did in claimed:
        if did in finished:
            outcomes.append(finished[did])
        elif did in started:
            outcomes.append(
                Outcome(
                    did,
                    DeliveryStatus.UNKNOWN,
                    None,
                    STOPPED_TEXT,
                    now,
                    attempts.get(did, 0) + 1,
                )
            )
            counts["unknown"] += 1
        else:
            release.append(did)
    store.issues.record(outcomes, worker=worker)
    store.issues.release(release, now, worker=worker)
    counts["recorded"] += len(outcomes) - sum(1 for o in outcomes if o.status is DeliveryStatus.UNKNOWN)
    counts["released"] += len(release)


@dataclass
class RetryPolicy:
    """Exponential backoff for 4xx answers, from ``retry_min`` to ``retry_max``."""

    retry_min: timedelta
    retry_max: timedelta
    give_up: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        d = settings.delivery
        return cls(d.retry_min, d.retry_max, d.give_up)

    def next_attempt(self, attempts: int, now: datetime) -> datetime:
        delay: timedelta = min(self.retry_min * (2 ** max(attempts - 1, 0)), self.retry_max)
        return now + delay


@dataclass
class DeliveryTally:
    """Counts of one sending run, by outcome."""

    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    unknown: int = 0
    skipped: int = 0
    released: int = 0

    def add(self, status: DeliveryStatus) -> None:
        name = status.value
        if hasattr(self, name):
            setattr(self, name, getattr(self, name) + 1)


ProgressFn = Callable[[int], None]


def is_deliverable(list_status: str | None) -> bool:
    """Only a subscriber still confirmed on the list when the message goes out gets it."""
    return list_status == SubscriptionStatus.CONFIRMED.value


class Sender:
    """Sends every due delivery (of one list, or all): claim, personalise, send, record.

    Rendering is done once per (issue, language) and cached; each message is then a
    byte substitution (publisher.messages). Outcomes are journaled at once and written
    to the store every ``flush_every`` results, off the event loop.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock,
        stop_requested: StopFlag = lambda: False,
        progress: ProgressFn | None = None,
        flush_every: int = 500,
        lease: WorkerLease | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.stop_requested = stop_requested
        self.progress = progress
        self.flush_every = flush_every
        # `publisher worker` keeps one lease (one worker id and row) for all its rounds;
        # otherwise each run registers its own.
        self._own_lease = lease is None
        self.lease = lease or WorkerLease(store, new_worker_id(), settings.delivery.lease, self._counts)
        self.policy = RetryPolicy.from_settings(settings)
        # The DKIM key is read and checked once, before the first message (a bad key
        # stops the run here rather than failing every message).
        self.signer = DkimSigner(settings.dkim) if settings.dkim is not None else None
        self.worker = self.lease.worker
        self.journal_dir = settings.delivery.journal_dir
        self.tally = DeliveryTally()
        self._renders: dict[tuple[int, str], RenderedIssue] = {}
        self._issues: dict[int, IssueRow] = {}
        # issue id -> (its list's config and envelope sender), or None when the list is
        # no longer configured; settings do not change during a run.
        self._lists: dict[int, tuple[ListConfig, str] | None] = {}
        self._claimed: dict[int, Claimed] = {}
        # With [bounces] address, each message's envelope sender is its own signed
        # bounces+TOKEN@domain (VERP), so a later bounce names the delivery it is about.
        bounces = settings.bounces
        self._return_path = ReturnPath(bounces.address) if bounces and bounces.address else None
        self._buffer: list[Outcome] = []
        self._bounces: list[tuple[int, str]] = []
        self._message_ids: dict[int, str] = {}
        self._started: set[int] = set()
        self._done = asyncio.Event()  # the send is over (stops the timed flushes)
        self.settled = True  # False while (or if) a run leaves claims of this worker unsettled

    def _counts(self) -> dict[str, int]:
        """What the worker's row shows (renewed with the lease)."""
        return dataclasses.asdict(self.tally)

    async def run(self, list_slug: str | None = None) -> DeliveryTally:
        # Unsettled until proven otherwise: recovery may find this worker's own journal
        # of an earlier round, and fail to apply it while the store is out of reach.
        self.settled = False
        await asyncio.to_thread(recover, self.store, self.journal_dir, self.clock(), self.worker)
        self.journal = Journal(self.journal_dir, self.worker)
        if self._own_lease:
            try:
                await self.lease.start()
            except BaseException:
                self.journal.close(remove=True)
                self.settled = True  # it claimed nothing
                raise
        transport = make_transport(self.settings)
        self._done = asyncio.Event()
        flusher = asyncio.create_task(self._flush_on_time())
        clean = False
        outage: MailError | None = None
        fenced: LeaseError | None = None
        try:
            await transport.send(self._messages(list_slug), self._on_result, self._on_start)
            clean = True
        except MailError as e:  # the relay cannot be reached: reported once, below
            outage = e
        except LeaseError as e:  # see publisher.lease: no new message text from here on
            fenced = e
        finally:
            await transport.close()
            self._done.set()
            await flusher
            settled = False
            try:
                await self._flush()
                await asyncio.to_thread(self._settle_own_claims)
                settled = self.settled = True
            finally:
                # Keep the journal if the store could not take the outcomes: the next
                # sender's recovery applies it.
                self.journal.close(remove=settled)
                fenced = fenced or self.lease.fenced
                if self._own_lease:
                    await self.lease.stop(ended=settled and fenced is None)
            if not clean and outage is None and fenced is None:
                log.warning("sending stopped early; %d deliveries left queued", self.tally.released)
        if fenced is not None:
            raise fenced
        if outage is not None:
            queued = await asyncio.to_thread(self.store.issues.queued_count, list_slug)
            raise MailError(f"{outage}; {queued} message(s) left queued") from outage
        t = self.tally
        if any((t.sent, t.deferred, t.failed, t.bounced, t.unknown, t.skipped)):
            log.info(
                "delivered%s: sent %d, deferred %d, failed %d, bounced %d, unknown %d, skipped %d",
                f" list {list_slug}" if list_slug else "",
                t.sent, t.deferred, t.failed, t.bounced, t.unknown, t.skipped,
            )  # fmt: skip
        return self.tally

    def _on_start(self, delivery_id: int) -> None:
        """The transport is about to write this message's text: from now on it may arrive.

        A fenced worker raises instead (LeaseError): the transport then writes no text,
        lets the messages already going out finish, and stops.
        """
        self.lease.check()
        self.journal.started(delivery_id)
        self._started.add(delivery_id)

    def _settle_own_claims(self) -> None:
        """Rows this worker claimed but never finished: unknown if started, else queued again.

        Covers a stop or cancel at any point, including a claim that completed in its
        thread after the generator was cancelled.
        """
        counts = {"recorded": 0, "unknown": 0, "released": 0}
        _settle(self.store, self.worker, self._started, {}, self.clock(), counts)
        self.tally.released += counts["released"]
        self.tally.unknown += counts["unknown"]

    # -- feeding the transport -------------------------------------------------

    def _stopping(self) -> bool:
        """A stop was asked for (SIGTERM) or the worker is fenced: take no more work."""
        return self.stop_requested() or self.lease.fenced is not None

    async def _messages(self, list_slug: str | None) -> AsyncIterator[OutgoingMessage]:
        """Claimed deliveries as messages, each start-marked in the store before it is yielded.

        Marks go in chunks of :data:`START_MARKS` rows ahead of the transport (one
        UPDATE each, the next chunk's while this one goes out): a row this worker may
        start always carries the mark, so when the worker is lost with its journal, its
        unmarked rows are safe to queue again.
        """
        while not self._stopping():
            batch = await asyncio.to_thread(
                self.store.issues.claim,
                self.worker,
                self.settings.delivery.batch_size,
                self.clock(),
                list_slug=list_slug,
            )
            if not batch:
                return
            log.debug(
                "claimed %d deliveries of issue(s) %s",
                len(batch),
                ", ".join(sorted({str(c.issue_id) for c in batch})),
            )
            for claimed in batch:
                self._claimed[claimed.delivery_id] = claimed
            chunks = [batch[n : n + START_MARKS] for n in range(0, len(batch), START_MARKS)]
            marking: asyncio.Task[bool] | None = self._mark(chunks[0])
            try:
                for n, chunk in enumerate(chunks):
                    assert marking is not None
                    whole = await marking
                    # The next chunk is marked while this one goes out: off the critical path.
                    marking = self._mark(chunks[n + 1]) if n + 1 < len(chunks) else None
                    if not whole:  # rows taken from us: the lease was lost
                        self.lease.lose("another process settled its deliveries")
                        return
                    for claimed in chunk:
                        if self._stopping():
                            return
                        message = await self._prepare(claimed)
                        if message is not None:
                            yield message  # journaled only once its text goes out (_on_start)
            finally:
                if marking is not None:
                    marking.cancel()  # its rows, if marked, are released as never started

    def _mark(self, chunk: list[Claimed]) -> asyncio.Task[bool]:
        """Start-mark ``chunk`` in the store (in a thread); True when every row took the mark."""
        ids = [c.delivery_id for c in chunk]

        async def mark() -> bool:
            marked = await asyncio.to_thread(self.store.issues.mark_started, self.worker, ids, self.clock())
            return len(marked) == len(ids)

        return asyncio.create_task(mark())

    async def _prepare(self, c: Claimed) -> OutgoingMessage | None:
        issue = self._issues.get(c.issue_id) or await asyncio.to_thread(self.store.issues.by_id, c.issue_id)
        if issue is None:  # the issue row was deleted under us (ON DELETE CASCADE)
            return None
        self._issues[c.issue_id] = issue
        listed = self._list_of(issue)
        if listed is None:
            await self._settle_now(
                c, DeliveryStatus.SKIPPED, f"list {issue.list_slug!r} is no longer configured"
            )
            return None
        list_cfg, sender_address = listed
        if not is_deliverable(c.list_status) or not c.email:
            await self._settle_now(
                c, DeliveryStatus.SKIPPED, f"subscriber is {c.list_status or 'gone'} on this list"
            )
            return None
        # Languages outside the catalogue render as the site's: one render serves them all.
        language = normalise_language(c.language, self.settings.site.language)
        rendered = self._renders.get((issue.id, language))
        if rendered is None:
            rendered = await self._render(issue, list_cfg, language)
        subscriber = Subscriber(
            id=c.subscriber_id,
            email=c.email,
            name=c.name,
            language=c.language,
            secret=c.secret,
            list_slug=issue.list_slug,
            status=SubscriptionStatus.CONFIRMED,
        )
        try:
            if rendered.per_recipient:  # a render of its own (milliseconds): off the event loop
                message_id, data = await asyncio.to_thread(
                    rendered.personalise, subscriber, delivery_id=c.delivery_id
                )
            else:
                message_id, data = rendered.personalise(subscriber, delivery_id=c.delivery_id)
        except TemplateError as e:  # this recipient's values broke the template: the rest go on
            await self._settle_now(c, DeliveryStatus.FAILED, str(e))
            return None
        self._message_ids[c.delivery_id] = message_id
        if self._return_path is not None:
            sender_address = self._return_path.for_delivery(issue.id, c.subscriber_id, c.secret)
        return OutgoingMessage(key=c.delivery_id, sender=sender_address, recipient=c.email, data=data)

    def _list_of(self, issue: IssueRow) -> tuple[ListConfig, str] | None:
        """The issue's list config and envelope sender, looked up (and parsed) once per issue."""
        if issue.id not in self._lists:
            try:
                list_cfg = self.settings.list_config(issue.list_slug)
            except PublisherError:
                self._lists[issue.id] = None
            else:
                self._lists[issue.id] = (list_cfg, list_cfg.sender_address)
        return self._lists[issue.id]

    async def _render(self, issue: IssueRow, list_cfg: ListConfig, language: str) -> RenderedIssue:
        """Render (issue, language) once; every later message of it is a substitution."""
        rendered = await asyncio.to_thread(
            render_stored_issue, self.settings, self.store, issue, list_cfg, language, self.signer
        )
        self._renders[(issue.id, language)] = rendered
        return rendered

    # -- results ---------------------------------------------------------------

    async def _on_result(self, result: SendResult) -> None:
        c = self._claimed.pop(result.key)
        now = self.clock()
        status = DeliveryStatus(result.status)
        attempts = c.attempts + 1
        next_attempt = None
        text = result.text
        if status is DeliveryStatus.DEFERRED:
            issue = self._issues[c.issue_id]
            if now - issue.created >= self.policy.give_up:
                status = DeliveryStatus.FAILED
                text = f"gave up after {self.settings.delivery.give_up}: {text}"
            else:
                next_attempt = self.policy.next_attempt(attempts, now)
        outcome = Outcome(
            c.delivery_id,
            status,
            result.code,
            text,
            now,
            attempts,
            next_attempt,
            self._message_ids.pop(c.delivery_id, None),
        )
        self.journal.finished(outcome)
        self._record(outcome, c)
        if len(self._buffer) >= self.flush_every:
            await self._flush()

    async def _settle_now(self, c: Claimed, status: DeliveryStatus, text: str) -> None:
        del self._claimed[c.delivery_id]
        outcome = Outcome(c.delivery_id, status, None, text, self.clock(), c.attempts)
        self.journal.finished(outcome)
        self._record(outcome, c)

    def _record(self, outcome: Outcome, c: Claimed) -> None:
        self._buffer.append(outcome)
        self.tally.add(outcome.status)
        if outcome.status is DeliveryStatus.BOUNCED:
            issue = self._issues[c.issue_id]
            detail = f"{outcome.code} {outcome.text} (list {issue.list_slug})"
            self._bounces.append((c.subscriber_id, detail))
        if self.progress:
            self.progress(1)

    async def _flush_on_time(self) -> None:
        """Write outcomes at least every :data:`FLUSH_SECONDS`, not only every ``flush_every``.

        What a lost host takes with it is its outcomes not yet in the store (they become
        ``unknown``); at a slow rate ``flush_every`` results could take minutes to gather.
        """
        while not self._done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FLUSH_SECONDS):
                    await self._done.wait()
            if self._buffer and not self._done.is_set():
                try:
                    await self._flush()
                except Exception as e:  # kept for the final flush, which reports it
                    log.warning("cannot write outcomes yet: %s", error_line(e))

    async def _flush(self) -> None:
        self.journal.sync()  # the journal stays a superset of what the store holds
        batch, self._buffer = self._buffer, []
        bounces, self._bounces = self._bounces, []
        if batch:
            try:
                await asyncio.to_thread(self.store.issues.record, batch, worker=self.worker)
            except BaseException:
                self._buffer[:0], self._bounces[:0] = batch, bounces  # for the next flush
                raise
            # Recorded rows are no longer 'sending', so settling never looks for them:
            # forget them, keeping memory flat in list size. (Not before: a batch the
            # store refused must still count as started.)
            self._started.difference_update(o.delivery_id for o in batch)
        # A 5.1.x bounce says the mailbox does not exist: suppress it on every list.
        for subscriber_id, detail in bounces:
            await asyncio.to_thread(
                set_status,
                self.store,
                subscriber_id,
                None,
                SubscriptionStatus.BOUNCED,
                detail,
                now=self.clock(),
            )


def render_stored_issue(
    settings: Settings,
    store: Store,
    issue: IssueRow,
    list_cfg: ListConfig,
    language: str,
    signer: DkimSigner | None = None,
) -> RenderedIssue:
    """Render a stored issue once for one language (the sender caches it per issue).

    The items are those the issue recorded as shown, so a retry next week renders the
    same mail even if ``max_items`` or the items changed since; dated by its send day.
    """
    return render_issue(
        settings,
        list_cfg,
        store.items.by_ids(store.issues.shown_item_ids(issue)),
        issue_id=issue.id,
        period_label=period_label(settings, issue.created, language),
        language=language,
        now=issue.created,
        signer=signer,
        more_items=issue.omitted,
        archive_url=issue_url(settings, list_cfg, issue.period_key, language),
    )
