"""Workers anywhere: leases, fencing, lost hosts, ``[delivery] mode = "workers"``.

Real PostgreSQL (and SQLite where one host is enough), a real SMTP server on loopback
(aiosmtpd) and real ``publisher worker`` processes, killed with SIGKILL, each with a
journal folder of its own as if it ran on a host of its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from publisher import ledger
from publisher.app import Publisher
from publisher.config import Settings, load_config
from publisher.errors import LeaseError
from publisher.lease import WorkerLease
from publisher.models import DeliveryStatus, JobKind
from publisher.store import Store
from publisher.store.issues import Outcome
from publisher.store.tables import deliveries, workers
from publisher.subscriptions import import_csv
from tests.smtp_server import Rule, SmtpSink
from tests.tcp_proxy import TcpProxy
from tests.test_cli import cli, site  # noqa: F401  (the fixture)
from tests.test_digests import LISTS, SCHEDULES, Clock, item, make_publisher, subscribe
from tests.test_store_issues import LISTS as STORE_LISTS
from tests.test_store_issues import NOW, make_issue

REPO = Path(__file__).parent.parent


def _expire_lease(store: Store, worker: str) -> None:
    """What a lapsed lease looks like: its time is over (the host stopped renewing)."""
    with store.engine.begin() as conn:
        conn.execute(
            update(workers).where(workers.c.id == worker).values(lease_until=datetime(2000, 1, 1, tzinfo=UTC))
        )


def _statuses(store: Store) -> dict[int, tuple[str, str | None]]:
    with store.engine.connect() as conn:
        q = select(deliveries.c.id, deliveries.c.status, deliveries.c.claimed_by)
        return {r[0]: (r[1], r[2]) for r in conn.execute(q)}


# -- the store fences a lost worker ----------------------------------------------------------


def test_a_lost_workers_claims_are_settled_from_the_store_and_it_can_change_nothing(
    store: Store, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(lists=STORE_LISTS)
    make_issue(store, settings, 10)
    store.workers.register("lost", "host-a", 4242, timedelta(minutes=5))
    claimed = [c.delivery_id for c in store.issues.claim("lost", 10, NOW)]
    assert store.issues.mark_started("lost", claimed[:4], NOW) == claimed[:4]

    # Its lease is still on: nobody touches its rows.
    assert ledger.recover(store, tmp_path / "journal", NOW) == {"recorded": 0, "unknown": 0, "released": 0}
    _expire_lease(store, "lost")
    assert ledger.recover(store, tmp_path / "journal", NOW) == {"recorded": 0, "unknown": 4, "released": 6}
    assert ledger.recover(store, tmp_path / "journal", NOW) == {"recorded": 0, "unknown": 0, "released": 0}
    settled = _statuses(store)
    assert [settled[i][0] for i in claimed] == ["unknown"] * 4 + ["pending"] * 6

    # The lost worker, still running somewhere, can neither record, release, mark nor claim.
    sent = [Outcome(i, DeliveryStatus.SENT, 250, "ok", NOW, 1) for i in claimed]
    assert store.issues.record(sent, worker="lost") == 0
    store.issues.release(claimed, NOW, worker="lost")
    assert store.issues.mark_started("lost", claimed, NOW) == []
    with pytest.raises(LeaseError, match="worker lost lost its lease"):
        store.issues.claim("lost", 10, NOW)
    assert not store.workers.renew("lost", timedelta(minutes=5), {"sent": 10})
    assert _statuses(store) == settled

    # Another worker takes the released rows; its outcomes keep who sent them.
    store.workers.register("other", "host-b", 4343, timedelta(minutes=5))
    again = [c.delivery_id for c in store.issues.claim("other", 10, NOW)]
    assert sorted(again) == sorted(claimed[4:])
    assert store.issues.record(
        [Outcome(i, DeliveryStatus.SENT, 250, "ok", NOW, 1) for i in again], worker="other"
    )
    after = _statuses(store)
    assert [after[i] for i in again] == [("sent", "other")] * 6


def test_a_journal_on_this_host_settles_its_worker_at_once_and_expires_it(
    store: Store, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """A worker killed on this host: its journal (lock free) is applied before its lease ends."""
    settings = make_settings(lists=STORE_LISTS)
    make_issue(store, settings, 5)
    store.workers.register("dead", "here", 1, timedelta(minutes=5))
    ids = [c.delivery_id for c in store.issues.claim("dead", 5, NOW)]
    store.issues.mark_started("dead", ids, NOW)
    journal = ledger.Journal(tmp_path / "journal", "dead")
    journal.started(ids[0])
    journal.finished(Outcome(ids[0], DeliveryStatus.SENT, 250, "ok", NOW, 1))
    journal.started(ids[1])
    journal.close(remove=False)  # what a SIGKILL leaves

    counts = ledger.recover(store, tmp_path / "journal", NOW)
    assert counts == {"recorded": 1, "unknown": 1, "released": 3}  # marked but never started: released
    assert not store.workers.renew("dead", timedelta(minutes=5), {})
    assert not (tmp_path / "journal" / "dead.journal").exists()


def test_claims_from_before_leases_keep_the_six_hour_rule_and_leased_ones_wait_for_their_lease(
    store: Store, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(lists=STORE_LISTS)
    make_issue(store, settings, 6)
    long_ago = NOW - ledger.STALE_CLAIM - timedelta(minutes=1)
    legacy = [c.delivery_id for c in store.issues.claim("old-version-worker", 3, long_ago)]
    store.workers.register("slow", "host-c", 7, timedelta(days=1))
    leased = [c.delivery_id for c in store.issues.claim("slow", 3, long_ago)]

    counts = ledger.recover(store, tmp_path / "journal", NOW)
    # Unregistered, no journal here, claimed 6 hours ago: it may have sent, so unknown.
    assert counts == {"recorded": 0, "unknown": 3, "released": 0}
    statuses = _statuses(store)
    assert [statuses[i][0] for i in legacy] == ["unknown"] * 3
    assert [statuses[i] for i in leased] == [("sending", "slow")] * 3  # its lease still holds


# -- a sender fences itself ----------------------------------------------------------------


@pytest.fixture
def pg_settings(make_settings: Callable[..., Settings], tmp_path: Path, pg_url: str) -> Settings:
    return make_settings(
        storage={"url": pg_url},
        lists=LISTS,
        schedules=SCHEDULES,
        delivery={"journal_dir": str(tmp_path / "journal"), "lease": "3s"},
    )


def test_a_sender_whose_lease_was_won_by_another_process_stops_and_says_why(
    pg_settings: Settings, smtp_server: SmtpSink
) -> None:
    clock = Clock(NOW)
    pub = make_publisher(pg_settings, clock, smtp_server, connections=2)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    addresses = subscribe(pub, 120)
    smtp_server.script(Rule("data", delay=0.1, times=60))  # 3 s: time to be caught
    sender = ledger.Sender(pub.settings, pub.store, clock=clock)

    async def run() -> int:
        pub.request_stop()
        await pub.send_digest("weekly")  # creates the issue, sends nothing (stop asked)
        pub._stop = False
        task = asyncio.create_task(sender.run("weekly"))
        while len(smtp_server.accepted()) < 10:
            await asyncio.sleep(0.01)
        # Another process won this worker (as when its lease lapsed): the next renewal fails.
        assert await asyncio.to_thread(pub.store.workers.expire, sender.worker, lapsed_only=False)
        won = len(smtp_server.accepted())
        with pytest.raises(LeaseError, match="another process found its lease lapsed"):
            await task
        return won

    won = asyncio.run(run())
    stopped_at = len(smtp_server.accepted())
    # Within a renewal or two (0.75 s each; 20 messages/s on 2 connections), never the whole list.
    assert won <= stopped_at < won + 60 and stopped_at < len(addresses)
    (row,) = pub.digest_status()
    assert row.sending == 0 and row.sent + row.unknown + row.pending == 120 and row.pending > 0
    (mine,) = row.workers
    assert mine.state == "expired" and mine.sent == row.sent

    rest = asyncio.run(pub.send_digest("weekly"))  # another sender finishes the issue
    per_recipient = smtp_server.accepted_per_recipient()
    assert rest.sent == row.pending and max(per_recipient.values()) == 1
    assert len(per_recipient) + row.unknown >= 120


def test_a_lease_that_cannot_be_renewed_for_half_its_time_fences_the_worker(
    pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    store = Store(pg_settings.storage.url)

    def unreachable(*args: object) -> bool:
        raise OperationalError("renew", {}, ConnectionRefusedError("connection refused"))

    async def run() -> tuple[LeaseError | None, LeaseError | None]:
        lease = WorkerLease(store, "w-unreachable", pg_settings.delivery.lease)
        await lease.start()
        monkeypatch.setattr(store.workers, "renew", unreachable)
        await asyncio.sleep(1.2)
        early = lease.fenced  # one renewal failed, the grace (1.5 s) not over
        await asyncio.sleep(0.6)
        late = lease.fenced
        await lease.stop(ended=False)
        return early, late

    early, late = asyncio.run(run())
    assert early is None
    assert late is not None and "could not be reached to renew its lease for 1.5 s" in str(late)


def test_a_renewal_slower_than_its_interval_is_logged_and_fences_not_crashes(
    pg_settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal that outlasts its 0.75 s times out: TimeoutError's message is empty, and
    the log line made of it must not raise (it did, and took the send down with it)."""
    store = Store(pg_settings.storage.url)

    def slow(*args: object) -> bool:
        time.sleep(1.0)
        return True

    async def run() -> LeaseError | None:
        lease = WorkerLease(store, "w-slow", pg_settings.delivery.lease)
        await lease.start()
        monkeypatch.setattr(store.workers, "renew", slow)
        await asyncio.sleep(2.4)
        fenced = lease.fenced
        await lease.stop(ended=False)  # returns: the heartbeat ended on its own, not by an error
        return fenced

    with caplog.at_level(logging.WARNING, logger="publisher"):
        fenced = asyncio.run(run())
    assert "worker w-slow: cannot renew its lease: TimeoutError" in caplog.text
    assert fenced is not None and "could not be reached to renew its lease" in str(fenced)
    store.close()


def test_a_worker_rides_out_a_short_database_outage_and_sends_each_message_once(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    pg_url: str,
    smtp_server: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A PostgreSQL restart of a second or two, mid-send, must not kill every worker of a fleet."""
    journal = tmp_path / "journal"
    direct = make_settings(storage={"url": pg_url}, lists=LISTS, schedules=SCHEDULES)
    clock = Clock(NOW)
    pub = make_publisher(direct, clock, smtp_server, connections=2)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    addresses = subscribe(pub, 200)
    pub.request_stop()
    assert asyncio.run(pub.send_digest("weekly")).created  # queued, nothing sent
    smtp_server.script(Rule("data", delay=0.02))  # about 2 s of sending on 2 connections

    with TcpProxy(("127.0.0.1", 5432)) as proxy:
        through = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        assert through != pg_url
        settings = make_settings(
            storage={"url": through},
            lists=LISTS,
            schedules=SCHEDULES,
            delivery={"journal_dir": str(journal), "lease": "8s"},  # fenced after 4 s out of reach
        )
        worker = make_publisher(settings, clock, smtp_server, connections=2)

        async def run() -> None:
            task = asyncio.create_task(worker.deliver_queue(interval=0.2))
            while len(smtp_server.accepted()) < 40:
                await asyncio.sleep(0.01)
            proxy.cut()
            await asyncio.sleep(1.5)
            assert not task.done(), "the worker died with the database"
            proxy.restore()
            deadline = time.monotonic() + 60
            while not await asyncio.to_thread(_done, pub):
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.1)
            worker.request_stop()
            await task  # ends cleanly: no exception

        with caplog.at_level("WARNING"):
            asyncio.run(run())
        worker.store.close()

    assert "the store is out of reach" in caplog.text  # the outage did reach the worker
    per_recipient = smtp_server.accepted_per_recipient()
    assert max(per_recipient.values()) == 1, "someone got the issue twice"
    (row,) = pub.digest_status()
    assert row.sent + row.unknown == len(addresses) and row.unknown <= 2  # at most `connections`
    assert len(addresses) - len(per_recipient) <= row.unknown
    assert list(journal.glob("*.journal")) == []  # the journal kept during the outage was applied
    (mine,) = row.workers
    assert mine.state == "ended"


# -- mode = "workers" --------------------------------------------------------------------------


def test_workers_mode_queues_without_sending_and_digest_status_shows_each_worker(
    site: Path,  # noqa: F811
) -> None:
    with (site / "config.toml").open("a") as config:
        config.write('\n[delivery]\nmode = "workers"\n')
    assert cli(site, "ingest").returncode == 0

    queued = cli(site, "digest", "send", "weekly")
    assert queued.returncode == 0, queued.stderr
    assert "3 deliveries queued for `publisher worker`" in queued.stdout
    assert not list((site / "var" / "outbox" / "new").glob("*"))
    again = json.loads(cli(site, "digest", "send", "weekly", "--json").stdout)
    assert again["queued"] == 3 and again["sent"] == 0 and not again["created"]

    waiting = cli(site, "digest", "status")
    assert "3 deliveries are queued and no `publisher worker` is running" in waiting.stderr
    assert "Workers" not in waiting.stdout

    worker = cli(site, "worker", "--once")
    assert worker.returncode == 0 and "worker: sent 3" in worker.stdout, worker.stderr
    assert len(list((site / "var" / "outbox" / "new").glob("*"))) == 3

    status = cli(site, "digest", "status")
    assert "no `publisher worker` is running" not in status.stderr
    assert "Workers" in status.stdout and socket.gethostname()[:10] in status.stdout
    assert "ended" in status.stdout
    rows = json.loads(cli(site, "digest", "status", "--json").stdout)
    (weekly,) = [r for r in rows if r["list_slug"] == "weekly"]
    (sender,) = weekly["workers"]
    assert sender["host"] == socket.gethostname() and sender["sent"] == 3 and sender["state"] == "ended"
    assert isinstance(sender["pid"], int) and sender["rate"] >= 0


def test_a_scheduled_digest_in_workers_mode_counts_what_it_queued(
    make_settings: Callable[..., Settings], tmp_path: Path, smtp_server: SmtpSink
) -> None:
    settings = make_settings(
        lists=LISTS, schedules=SCHEDULES, delivery={"journal_dir": str(tmp_path / "j"), "mode": "workers"}
    )
    pub = make_publisher(settings, Clock(NOW), smtp_server)
    pub.store.items.save([item(1, NOW - timedelta(hours=1))], [], NOW)
    subscribe(pub, 4)
    counts = asyncio.run(pub.arun_job(JobKind.DIGEST, schedule="weekly-digest", fire_time=NOW))
    assert counts["queued"] == 4 and counts["sent"] == 0 and counts["issues"] == 1
    assert smtp_server.received == []
    assert pub.idle_queue_warning() is not None


# -- several `publisher worker` processes, one killed ----------------------------------------

SUBSCRIBERS = 20_000
CONNECTIONS = 4


class Fleet:
    """Three `publisher worker` processes on one issue, each with a journal folder of its own."""

    def __init__(self, base: Path, store_url: str, sink: SmtpSink, lease: str) -> None:
        self.base = base
        self.configs: list[Path] = []
        for n in range(3):
            config = base / f"worker{n}.toml"
            config.write_text(
                textwrap.dedent(
                    f"""
                    [site]
                    base_url = "http://127.0.0.1:8080"
                    timezone = "Europe/Zurich"
                    postal_address = "1 Main Street, Geneva"
                    [storage]
                    url = "{store_url}"
                    [smtp]
                    host = "{sink.host}"
                    port = {sink.port}
                    connections = {CONNECTIONS}
                    [delivery]
                    mode = "workers"
                    lease = "{lease}"
                    journal_dir = "{base / f"journal{n}"}"
                    [[sources]]
                    name = "sample"
                    type = "directory"
                    path = "content"
                    [[lists]]
                    slug = "weekly"
                    name = "Weekly"
                    sender = "News <news@example.org>"
                    """
                )
            )
            self.configs.append(config)
        (base / "content").mkdir(exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, n: int) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "publisher.cli",
                "--config",
                str(self.configs[n]),
                "worker",
                "--interval",
                "0.3",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            proc.wait(timeout=60)


@pytest.fixture
def fleet_store(pg_url: str, tmp_path: Path) -> Iterator[tuple[Publisher, str]]:
    """A store holding one queued issue of the weekly list to SUBSCRIBERS readers."""
    config = tmp_path / "setup.toml"
    config.write_text(
        f'[site]\nbase_url = "http://127.0.0.1:8080"\npostal_address = "1 Main Street"\n'
        f'[storage]\nurl = "{pg_url}"\n[delivery]\nmode = "workers"\njournal_dir = "{tmp_path / "j"}"\n'
        '[[sources]]\nname = "sample"\ntype = "directory"\npath = "content"\n'
        '[[lists]]\nslug = "weekly"\nname = "Weekly"\nsender = "News <news@example.org>"\n'
    )
    (tmp_path / "content").mkdir(exist_ok=True)
    settings = load_config(config)
    pub = Publisher(settings, Store(settings.storage.url))
    now = datetime.now(UTC)
    pub.store.items.save([item(1, now - timedelta(hours=1))], [], now)
    csv = tmp_path / "subscribers.csv"
    csv.write_text(
        "email,name,language\n" + "".join(f"r{i}@example.org,Reader {i},en\n" for i in range(SUBSCRIBERS))
    )
    import_csv(settings, pub.store, "weekly", csv, now=now)
    report = asyncio.run(pub.send_digest("weekly"))
    assert report.created and report.queued == SUBSCRIBERS
    yield pub, pg_url
    pub.store.close()


def _wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _worker_id(store: Store, pid: int) -> str:
    with store.engine.connect() as conn:
        q = select(workers.c.id).where(workers.c.pid == pid, workers.c.host == socket.gethostname()[:255])
        found: str = conn.execute(q).scalar_one()
        return found


def _done(pub: Publisher) -> bool:
    (row,) = pub.digest_status()
    return row.pending == row.sending == row.deferred == 0


def _unstarted(store: Store, worker: str) -> int:
    """The worker's claimed rows it has not start-marked yet."""
    with store.engine.connect() as conn:
        q = select(func.count()).where(
            deliveries.c.claimed_by == worker,
            deliveries.c.status == "sending",
            deliveries.c.started_at.is_(None),
        )
        return int(conn.execute(q).scalar_one())


def _kill_mid_send(pub: Publisher, fleet: Fleet, sink: SmtpSink) -> tuple[subprocess.Popen[bytes], str]:
    """Start the fleet; SIGKILL worker 0 once 4,000 messages went out, early in one of its batches."""
    for n in range(3):
        fleet.start(n)
    victim = fleet.procs[0]
    _wait_until(lambda: len(sink.accepted()) >= 4000, 120, "4,000 messages")
    assert victim.poll() is None, "the worker ended before it could be killed"
    worker = _worker_id(pub.store, victim.pid)
    # Early in a batch: many of its claimed rows not even marked yet (it marks 64 at a time).
    _wait_until(lambda: _unstarted(pub.store, worker) >= 3 * ledger.START_MARKS, 60, "a fresh batch")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not _done(pub)
    return victim, worker


@pytest.mark.slow
def test_three_workers_one_killed_and_restarted_with_its_journal_send_each_message_once(
    fleet_store: tuple[Publisher, str], tmp_path: Path
) -> None:
    pub, url = fleet_store
    with SmtpSink(keep_text=False) as sink:
        fleet = Fleet(tmp_path, url, sink, lease="5m")
        try:
            _victim, dead = _kill_mid_send(pub, fleet, sink)
            assert (tmp_path / "journal0" / f"{dead}.journal").exists()  # it was mid-send
            fleet.start(0)  # the same host again: same journal folder
            _wait_until(lambda: _done(pub), 180, "the issue to be sent")
        finally:
            fleet.stop()
        per_recipient = sink.accepted_per_recipient()

    assert max(per_recipient.values()) == 1, "someone got the issue twice"
    (row,) = pub.digest_status()
    assert row.sent + row.unknown == SUBSCRIBERS and row.unknown <= CONNECTIONS
    assert SUBSCRIBERS - len(per_recipient) <= row.unknown  # only messages in doubt are missing
    states = {w.worker: w.state for w in row.workers}
    assert states.pop(dead) == "expired" and len(states) == 3 and set(states.values()) == {"ended"}
    assert all(w.sent > 0 for w in row.workers if w.worker != dead)


@pytest.mark.slow
def test_three_workers_one_lost_with_its_host_send_each_message_at_most_once(
    fleet_store: tuple[Publisher, str], tmp_path: Path
) -> None:
    pub, url = fleet_store
    with SmtpSink(keep_text=False) as sink:
        fleet = Fleet(tmp_path, url, sink, lease="4s")
        try:
            _victim, lost = _kill_mid_send(pub, fleet, sink)
            shutil.rmtree(tmp_path / "journal0")  # the host is gone, its journal with it
            with pub.store.engine.connect() as conn:
                held = conn.execute(
                    select(deliveries.c.id, deliveries.c.started_at.is_not(None)).where(
                        deliveries.c.claimed_by == lost, deliveries.c.status == "sending"
                    )
                ).all()
            started = {i for i, marked in held if marked}
            not_started = {i for i, marked in held if not marked}
            _wait_until(lambda: _done(pub), 180, "the issue to be sent")
        finally:
            fleet.stop()
        per_recipient = sink.accepted_per_recipient()

    assert max(per_recipient.values()) == 1, "someone got the issue twice"
    bound = 2 * ledger.START_MARKS + CONNECTIONS + 500  # marks ahead, in flight, outcomes not flushed
    assert not_started and len(started) <= bound
    statuses = _statuses(pub.store)
    assert {statuses[i][0] for i in started} <= {"unknown"}
    assert all(statuses[i][0] == "sent" and statuses[i][1] not in (lost, None) for i in not_started)
    (row,) = pub.digest_status()
    assert row.unknown == len(started) and row.sent + row.unknown == SUBSCRIBERS
    assert SUBSCRIBERS - len(per_recipient) <= row.unknown
    assert {w.worker: w.state for w in row.workers}[lost] == "expired"


# -- who is sending, and forgetting those long gone -------------------------------------------


def test_status_lists_the_senders_alive_now_and_not_the_stopped_ones(site: Path) -> None:  # noqa: F811
    publisher = Publisher(load_config(site / "config.toml"))
    publisher.store.workers.register("w-alive", "mail-2.example", 4711, timedelta(minutes=5))
    publisher.store.workers.register("w-done", "mail-3.example", 4712, timedelta(minutes=5))
    publisher.store.workers.end("w-done", {"sent": 9})
    publisher.close()

    shown = cli(site, "status")
    assert shown.returncode == 0, shown.stderr
    assert "Senders alive" in shown.stdout and "mail-2.example" in shown.stdout and "4711" in shown.stdout
    assert "mail-3.example" not in shown.stdout
    (alive,) = json.loads(cli(site, "status", "--json").stdout)["workers"]
    assert (alive["host"], alive["pid"], alive["state"]) == ("mail-2.example", 4711, "alive")


def test_stopped_workers_are_forgotten_after_90_days_unless_a_delivery_is_still_theirs(
    store: Store, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(lists=STORE_LISTS)
    make_issue(store, settings, 2)
    for name in ("ended-long-ago", "expired-with-claims", "ended-lately", "alive"):
        store.workers.register(name, "h", 1, timedelta(minutes=5))
    store.workers.end("ended-long-ago", {})
    store.workers.end("ended-lately", {})
    store.issues.claim("expired-with-claims", 1, NOW)
    store.workers.expire("expired-with-claims", lapsed_only=False)
    with store.engine.begin() as conn:
        conn.execute(
            update(workers)
            .where(workers.c.id.in_(["ended-long-ago", "expired-with-claims", "alive"]))
            .values(last_seen=datetime.now(UTC) - timedelta(days=91))
        )

    assert store.workers.prune(ledger.WORKER_ROWS_KEPT) == 1
    assert store.workers.known(["ended-long-ago", "expired-with-claims", "ended-lately", "alive"]) == {
        "expired-with-claims",
        "ended-lately",
        "alive",
    }
