"""When and how often scheduled jobs fire: catch-up, restarts, pause, DST, the lock, admin tools.

Tests about *when* a job fires use a real Publisher (real settings, real store) whose
``arun_job`` only records its arguments; tests about what a run records use the real
jobs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from publisher.app import Publisher
from publisher.config import Settings
from publisher.errors import FireTimeTaken, IssueError, SchedulerError
from publisher.models import JobKind, RunOutcome
from publisher.periods import period_key, schedule_trigger
from publisher.scheduler.locks import AdvisoryLock, FileLock, scheduler_lock
from publisher.scheduler.runner import ScheduleRunner
from publisher.store import Store

ZH = ZoneInfo("Europe/Zurich")
MakeSettings = Callable[..., Settings]


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class RecordingPublisher(Publisher):
    """A real Publisher whose jobs only note that they were asked to run, and for when."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str | None, datetime | None]] = []

    async def arun_job(
        self, job: str, *, schedule: str | None = None, fire_time: datetime | None = None
    ) -> dict[str, Any]:
        self.calls.append((job, schedule, fire_time))
        return {"ok": True}


class FailingPublisher(Publisher):
    async def arun_job(
        self, job: str, *, schedule: str | None = None, fire_time: datetime | None = None
    ) -> dict[str, Any]:
        raise IssueError("the SMTP server refused the connection")


def zurich(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZH)  # type: ignore[misc]


async def start_once(publisher: Publisher) -> list[tuple[str, str | None, datetime | None]]:
    """One daemon start: catch up, let the catch-up runs end, stop; return new calls."""
    assert isinstance(publisher, RecordingPublisher)
    before = len(publisher.calls)
    runner = ScheduleRunner(publisher, poll_interval=60)
    await runner.start()
    runner.stop_taking_work()
    assert await runner.wait_idle(5)
    return publisher.calls[before:]


@pytest.fixture
def daily(make_settings: MakeSettings) -> Settings:
    return make_settings(schedules={"daily": {"cron": "0 9 * * *", "job": "digest"}})


# -- catch-up after downtime ---------------------------------------------------------------


def test_first_start_sends_nothing(daily: Settings) -> None:
    clock = FakeClock(zurich(2026, 5, 5, 11, 0))  # 09:00 passed two hours ago
    publisher = RecordingPublisher(daily, clock=clock)
    assert asyncio.run(start_once(publisher)) == []
    state = publisher.store.runs.state("daily")
    assert state is not None and state.first_seen == clock.now


def test_missed_fire_within_catch_up_is_sent_once_with_its_fire_time(
    daily: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(zurich(2026, 5, 4, 8, 0))
    publisher = RecordingPublisher(daily, clock=clock)
    asyncio.run(start_once(publisher))  # first start, before Monday's 09:00

    clock.now = zurich(2026, 5, 5, 11, 0)  # down from Monday 08:00 to Tuesday 11:00
    with caplog.at_level(logging.INFO, logger="publisher.scheduler"):
        assert asyncio.run(start_once(publisher)) == [("digest", "daily", zurich(2026, 5, 5, 9, 0))]
    [record] = [r for r in caplog.records if "catching up" in r.getMessage()]
    assert (record.schedule, record.job) == ("daily", "digest")  # type: ignore[attr-defined]

    [run] = publisher.store.runs.recent(5)
    assert (run.schedule, run.job, run.outcome, run.fire_time) == (
        "daily",
        "digest",
        RunOutcome.OK,
        zurich(2026, 5, 5, 9),
    )
    state = publisher.store.runs.state("daily")
    assert state is not None and state.last_fire == zurich(2026, 5, 5, 9, 0)


def test_restart_after_catch_up_sends_nothing_again(daily: Settings) -> None:
    clock = FakeClock(zurich(2026, 5, 4, 8, 0))
    publisher = RecordingPublisher(daily, clock=clock)
    asyncio.run(start_once(publisher))
    clock.now = zurich(2026, 5, 5, 11, 0)
    assert len(asyncio.run(start_once(publisher))) == 1
    clock.now = zurich(2026, 5, 5, 11, 5)
    assert asyncio.run(start_once(publisher)) == []
    # A new process on the same store (nothing kept in memory) agrees.
    other = RecordingPublisher(daily, Store(daily.storage.url), clock=clock)
    assert asyncio.run(start_once(other)) == []


def test_missed_fire_older_than_catch_up_is_not_sent(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        schedules={"weekly": {"cron": "0 9 * * mon", "job": "digest", "catch_up": "24h"}}
    )
    clock = FakeClock(zurich(2026, 5, 1, 12, 0))
    publisher = RecordingPublisher(settings, clock=clock)
    asyncio.run(start_once(publisher))

    clock.now = zurich(2026, 5, 5, 15, 0)  # Monday 09:00 was 30 hours ago
    with caplog.at_level(logging.WARNING, logger="publisher.scheduler"):
        assert asyncio.run(start_once(publisher)) == []
    assert "missed more than catch_up=24h ago; not sent" in caplog.text
    assert publisher.store.runs.recent(5) == []


def test_ingest_catches_up_once_however_long_the_downtime(make_settings: MakeSettings) -> None:
    settings = make_settings(schedules={"often": {"every": "15m", "job": "ingest"}})
    clock = FakeClock(zurich(2026, 5, 1, 12, 0))
    publisher = RecordingPublisher(settings, clock=clock)
    assert asyncio.run(start_once(publisher)) == []
    clock.now = zurich(2026, 5, 4, 12, 7)  # three days later
    assert asyncio.run(start_once(publisher)) == [("ingest", "often", zurich(2026, 5, 4, 12, 0))]


def test_paused_schedule_is_not_caught_up(daily: Settings) -> None:
    clock = FakeClock(zurich(2026, 5, 4, 8, 0))
    publisher = RecordingPublisher(daily, clock=clock)
    asyncio.run(start_once(publisher))
    publisher.pause_schedule("daily")
    clock.now = zurich(2026, 5, 5, 11, 0)
    assert asyncio.run(start_once(publisher)) == []


def test_run_left_running_by_a_dead_process_is_marked_interrupted(
    daily: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = RecordingPublisher(daily, clock=FakeClock(zurich(2026, 5, 4, 8, 0)))
    dead = subprocess.Popen(["true"])
    dead.wait()
    host = __import__("socket").gethostname()
    runs = publisher.store.runs
    orphan = runs.start(
        "digest",
        schedule="daily",
        fire_time=None,
        now=publisher.clock(),
        owner={"host": host, "pid": dead.pid},
    )
    alive = runs.start(
        "digest", schedule="daily", fire_time=None, now=publisher.clock(), owner={"host": host, "pid": 1}
    )
    with caplog.at_level(logging.WARNING, logger="publisher.scheduler"):
        asyncio.run(start_once(publisher))
    assert [r.outcome for r in (runs.get(orphan), runs.get(alive)) if r] == [
        RunOutcome.INTERRUPTED,
        RunOutcome.RUNNING,
    ]
    [record] = [r for r in caplog.records if "left running" in r.getMessage()]
    assert (record.schedule, record.job, record.run) == ("daily", "digest", orphan)  # type: ignore[attr-defined]


# -- a running scheduler obeys pause and resume from another process ---------------------------


def test_pause_and_resume_are_obeyed_within_the_poll_interval(make_settings: MakeSettings) -> None:
    settings = make_settings(schedules={"tick": {"every": "1s", "job": "build"}})

    async def scenario() -> tuple[int, int, int]:
        publisher = RecordingPublisher(settings)
        admin = Publisher(settings, Store(settings.storage.url))  # the CLI, in "another process"
        runner = ScheduleRunner(publisher, poll_interval=0.1)
        await runner.start()
        try:
            await _wait_for(lambda: len(publisher.calls) >= 1, 5)
            assert runner.next_run_times()["tick"] is not None
            admin.pause_schedule("tick")
            # The poll pauses the APScheduler job itself (what `schedules list` reflects).
            await _wait_for(lambda: runner.next_run_times()["tick"] is None, 1)
            await asyncio.sleep(0.2)  # a run already started may finish
            paused_at = len(publisher.calls)
            await asyncio.sleep(2.5)
            during_pause = len(publisher.calls) - paused_at
            assert [i.paused for i in admin.schedules()] == [True]
            admin.resume_schedule("tick")
            await _wait_for(lambda: runner.next_run_times()["tick"] is not None, 1)
            resumed_at = len(publisher.calls)
            await _wait_for(lambda: len(publisher.calls) > resumed_at, 3)
            return paused_at, during_pause, len(publisher.calls) - resumed_at
        finally:
            runner.stop_taking_work()
            admin.close()

    _paused_at, during_pause, after_resume = asyncio.run(scenario())
    assert during_pause == 0
    assert after_resume >= 1


async def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


# -- DST: one fire per day, never skipped nor repeated ---------------------------------------------


def _simulate(settings: Settings, name: str, start: datetime, end: datetime) -> list[datetime]:
    """Drive the runner the way APScheduler does: each fire time, then the next from the trigger."""
    clock = FakeClock(start)
    publisher = RecordingPublisher(settings, clock=clock)
    runner = ScheduleRunner(publisher)
    trigger = schedule_trigger(settings, name)

    async def drive() -> None:
        fire = trigger.get_next_fire_time(None, start)
        while fire is not None and fire <= end:
            clock.now = fire.astimezone(UTC) + timedelta(seconds=1)
            await runner.fire(name)
            fire = trigger.get_next_fire_time(fire, clock.now)

    asyncio.run(drive())
    return [fire for _job, _schedule, fire in publisher.calls if fire is not None]


def _assert_one_per_local_day(fires: list[datetime], days: list[date]) -> None:
    assert [f.astimezone(ZH).date() for f in fires] == days
    assert len({period_key(f) for f in fires}) == len(fires)


SPRING = [date(2026, 3, 27) + timedelta(days=i) for i in range(5)]
FALL = [date(2026, 10, 23) + timedelta(days=i) for i in range(5)]


@pytest.mark.timeout(5)
def test_daily_digest_at_0230_across_spring_forward(make_settings: MakeSettings) -> None:
    settings = make_settings(schedules={"night": {"cron": "30 2 * * *", "job": "digest"}})
    fires = _simulate(settings, "night", zurich(2026, 3, 27), zurich(2026, 3, 31, 23))
    _assert_one_per_local_day(fires, SPRING)
    # 02:30 does not exist on 29 March: the run happens at 03:30 summer time, once.
    assert fires[2].astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


@pytest.mark.timeout(5)
def test_daily_digest_at_0230_across_fall_back(make_settings: MakeSettings) -> None:
    settings = make_settings(schedules={"night": {"cron": "30 2 * * *", "job": "digest"}})
    fires = _simulate(settings, "night", zurich(2026, 10, 23), zurich(2026, 10, 27, 23))
    _assert_one_per_local_day(fires, FALL)


@pytest.mark.timeout(5)
@pytest.mark.parametrize("month", [3, 10])
def test_weekly_sunday_digest_across_dst(make_settings: MakeSettings, month: int) -> None:
    settings = make_settings(schedules={"sunday": {"cron": "0 9 * * sun", "job": "digest"}})
    start, end = zurich(2026, month, 10), zurich(2026, month + 1, 10)
    fires = _simulate(settings, "sunday", start, end)
    sundays = [
        start.date() + timedelta(days=d) for d in range(31) if (start + timedelta(days=d)).weekday() == 6
    ]
    _assert_one_per_local_day(fires, [d for d in sundays if d < end.date()])
    assert {f.astimezone(ZH).hour for f in fires} == {9}


# -- admin tools --------------------------------------------------------------------------


def test_run_schedule_now_runs_the_real_job_and_records_it(make_settings: MakeSettings) -> None:
    settings = make_settings(schedules={"feeds": {"every": "1h", "job": "build"}})
    publisher = Publisher(settings)
    run = publisher.run_schedule_now("feeds")
    assert run.outcome == RunOutcome.OK and run.schedule == "feeds" and run.job == "build"
    assert run.counts["written"] > 0
    assert (settings.feeds.output_dir / "feeds" / "all.atom.xml").is_file()
    assert run.ended is not None and run.fire_time is not None
    [info] = publisher.schedules()
    assert info.last_run == run and info.last_outcome == RunOutcome.OK


def test_failed_run_is_recorded_with_its_error(daily: Settings) -> None:
    publisher = FailingPublisher(daily)
    run = publisher.run_schedule_now("daily")
    assert run.outcome == RunOutcome.FAILED
    assert run.error == "the SMTP server refused the connection"
    assert publisher.schedules()[0].last_outcome == RunOutcome.FAILED


def test_unknown_schedule_names_the_known_ones(daily: Settings) -> None:
    publisher = Publisher(daily)
    for action in (publisher.run_schedule_now, publisher.pause_schedule, publisher.resume_schedule):
        with pytest.raises(SchedulerError, match=r"unknown schedule 'dayly'; known schedules: daily"):
            action("dayly")


def test_schedules_overview_lists_next_three_runs_in_local_time(make_settings: MakeSettings) -> None:
    settings = make_settings(
        schedules={
            "weekly": {"cron": "0 9 * * mon", "job": "digest", "timezone": "America/New_York"},
            "often": {"every": "15m", "job": "ingest"},
        }
    )
    publisher = Publisher(settings)
    publisher.pause_schedule("often")
    infos = publisher.schedules(datetime(2026, 5, 5, 12, 7, tzinfo=UTC))
    assert [(i.name, i.job, i.trigger, i.timezone, i.paused) for i in infos] == [
        ("often", "ingest", "every 15m", "Europe/Zurich", True),
        ("weekly", "digest", "cron 0 9 * * mon", "America/New_York", False),
    ]
    assert infos[0].next_runs == [datetime(2026, 5, 5, 12, m, tzinfo=UTC) for m in (15, 30, 45)]
    ny = ZoneInfo("America/New_York")
    assert infos[1].next_runs == [datetime(2026, 5, d, 9, tzinfo=ny) for d in (11, 18, 25)]
    assert infos[1].last_run is None


def test_status_report(make_settings: MakeSettings) -> None:
    settings = make_settings(
        sources=[{"name": "sample", "type": "directory", "path": "content"}],
        lists=[{"slug": "weekly", "name": "Weekly", "sender": "News <news@example.org>"}],
        schedules={"feeds": {"every": "1h", "job": "build"}},
    )
    publisher = Publisher(settings)
    when = datetime(2026, 5, 5, 12, tzinfo=UTC)
    publisher.store.sources.record("sample", when, error="connection refused")
    publisher.run_schedule_now("feeds")
    report = publisher.status()
    assert [(s.name, s.last_fetch, s.last_error) for s in report.sources] == [
        ("sample", when, "connection refused")
    ]
    assert report.items_by_category == {}
    assert [(lst.slug, lst.schedule) for lst in report.lists] == [("weekly", None)]
    assert sum(report.lists[0].subscribers.values()) == 0
    assert report.recent_issues == []
    assert sum(report.queue.values()) == 0
    assert [(r.schedule, r.outcome) for r in report.recent_runs] == [("feeds", RunOutcome.OK)]


# -- fire-time claims: another daemon serving a fire time ---------------------------------------


def test_a_fire_time_claimed_by_another_daemon_is_skipped_then_served_if_that_daemon_died(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(schedules={"often": {"every": "15m", "job": "ingest"}})
    publisher = RecordingPublisher(settings)
    fire = publisher.current_fire_time("often")
    assert fire is not None
    publisher.store.runs.ensure_schedule("often", fire - timedelta(hours=1))
    # Another daemon claimed it, started its run and then died: its claim is never renewed.
    assert publisher.store.runs.claim_fire("often", fire, "elsewhere:42", timedelta(seconds=1)).granted
    dead_run = publisher.store.runs.start(
        JobKind.INGEST, schedule="often", fire_time=fire, now=fire, owner={"host": "elsewhere", "pid": 42}
    )

    async def scenario() -> None:
        runner = ScheduleRunner(publisher, poll_interval=60)
        await runner.run("often", fire)
        assert publisher.calls == []
        await _wait_for(lambda: len(publisher.calls) == 1, 5)  # the claim lapsed: served here
        await asyncio.sleep(0.2)
        assert await runner.wait_idle(5)

    with caplog.at_level(logging.INFO, logger="publisher.scheduler"):
        asyncio.run(scenario())
    assert publisher.calls == [("ingest", "often", fire)]
    [skipped] = [r for r in caplog.records if "not run here" in r.getMessage()]
    assert skipped.levelno == logging.INFO
    assert f"fire time {fire.isoformat()} is being served by elsewhere:42" in skipped.getMessage()
    state = publisher.store.runs.state("often")
    assert state is not None and state.last_fire == fire
    # The dead daemon's run, on another host, is closed by the one that took its fire time over.
    left = publisher.store.runs.get(dead_run)
    assert left is not None and left.outcome == RunOutcome.INTERRUPTED
    assert left.error is not None and "stopped renewing the claim" in left.error


def test_a_fire_time_the_other_daemon_failed_stays_unserved(make_settings: MakeSettings) -> None:
    settings = make_settings(schedules={"often": {"every": "15m", "job": "ingest"}})
    publisher = RecordingPublisher(settings)
    fire = publisher.current_fire_time("often")
    assert fire is not None
    runs = publisher.store.runs
    assert runs.claim_fire("often", fire, "elsewhere:42", timedelta(seconds=1)).granted

    async def scenario() -> None:
        runner = ScheduleRunner(publisher, poll_interval=60)
        await runner.run("often", fire)
        runs.finish_claim("often", fire, "elsewhere:42", served=False, now=publisher.clock())
        await asyncio.sleep(2.5)  # past the lapse: the retry finds the claim given up, not lapsed
        assert await runner.wait_idle(5)

    asyncio.run(scenario())
    assert publisher.calls == []


def test_schedules_run_refuses_a_fire_time_being_served_and_reruns_a_served_one(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(schedules={"feeds": {"every": "1h", "job": "build"}})
    publisher = RecordingPublisher(settings)
    fire = publisher.current_fire_time("feeds")
    assert fire is not None
    assert publisher.store.runs.claim_fire("feeds", fire, "elsewhere:42", timedelta(minutes=1)).granted
    with pytest.raises(FireTimeTaken, match=r"is being served by elsewhere:42 .*; not run here"):
        publisher.run_schedule_now("feeds")
    publisher.store.runs.finish_claim("feeds", fire, "elsewhere:42", served=True, now=publisher.clock())
    assert publisher.run_schedule_now("feeds").ok  # served already: the admin's run still runs
    assert publisher.calls == [("build", "feeds", fire)]


# -- one scheduler per store -------------------------------------------------------------------


def test_sqlite_lock_file_admits_one_scheduler(sqlite_store: Store, tmp_path: Path) -> None:
    first, second = scheduler_lock(sqlite_store), scheduler_lock(sqlite_store)
    assert isinstance(first, FileLock)
    assert first.path == tmp_path / "publisher.db.scheduler.lock"
    assert first.acquire() is True
    assert second.acquire() is False
    first.release()
    assert second.acquire() is True
    second.release()


def test_sqlite_lock_is_freed_when_its_process_dies(sqlite_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "publisher.db.scheduler.lock"
    holder = subprocess.Popen(
        ["python3", "-c", f"import fcntl,os,time; f=os.open({str(path)!r}, os.O_RDWR|os.O_CREAT); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    lock = scheduler_lock(sqlite_store)
    assert lock.acquire() is False
    holder.kill()
    holder.wait()
    assert lock.acquire() is True
    lock.release()


def test_stores_in_two_schemas_of_one_database_each_get_a_scheduler(pg_url: str) -> None:
    import uuid

    from sqlalchemy import create_engine, text

    from tests.conftest import PG_URL

    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    one, two = Store(pg_url), Store(f"{PG_URL}?options=-csearch_path%3D{schema}")
    try:
        first, second = scheduler_lock(one), scheduler_lock(two)
        assert first.acquire() is True and second.acquire() is True
        first.release()
        second.release()
    finally:
        one.close()
        two.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_postgres_advisory_lock_admits_one_scheduler(pg_url: str) -> None:
    one, two = Store(pg_url), Store(pg_url)
    try:
        first, second = scheduler_lock(one), scheduler_lock(two)
        assert isinstance(first, AdvisoryLock)
        assert first.acquire() is True
        assert first.acquire() is True  # re-entrant for its holder
        assert second.acquire() is False
        one.close()  # the pool is gone but the lock's own connection stays open
        assert second.acquire() is False
        first.release()  # its connection ends, as when the process dies
        assert second.acquire() is True
        second.release()
    finally:
        one.close()
        two.close()


def test_postgres_lock_check_notices_a_terminated_session(pg_url: str) -> None:
    from sqlalchemy import text

    one, two = Store(pg_url), Store(pg_url)
    try:
        first, second = scheduler_lock(one), scheduler_lock(two)
        assert isinstance(first, AdvisoryLock)
        assert first.acquire() is True and first.check() is True
        with one.engine.begin() as conn:
            # The lock's session is recognisable: "publisher scheduler HOST:PID".
            assert first.name.startswith("publisher scheduler ") and first.name.endswith(f":{os.getpid()}")
            [pid] = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"), {"n": first.name}
            ).scalars()
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        assert first.check() is False
        assert "terminating connection due to administrator command" in first.why_lost
        assert second.acquire() is True  # the lock went with the session
        assert first.acquire() is False
        second.release()
    finally:
        one.close()
        two.close()


def test_a_silent_holder_is_ended_only_by_a_role_allowed_to_see_and_signal_it(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Daemons on different database roles: ending a silent holder needs pg_read_all_stats and
    pg_signal_backend; without them a waiting daemon says so and leaves the holder alone."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = pg_url.rsplit("%3D", 1)[1]
    tag = uuid.uuid4().hex[:8]
    holder_role, blind_role, allowed_role = (f"hs_{tag}_{r}" for r in ("holder", "blind", "allowed"))
    admin = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))

    def lock_as(role: str) -> AdvisoryLock:
        url = pg_url.replace("postgresql://postgres@", f"postgresql+psycopg://{role}@")
        return AdvisoryLock(create_engine(url), takeover=timedelta(seconds=1))

    with admin.begin() as conn:
        for role in (holder_role, blind_role, allowed_role):
            conn.execute(text(f'CREATE ROLE "{role}" LOGIN; GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
        conn.execute(text(f'GRANT pg_read_all_stats, pg_signal_backend TO "{allowed_role}"'))
    holder, blind, allowed = lock_as(holder_role), lock_as(blind_role), lock_as(allowed_role)
    try:
        assert holder.acquire() is True
        time.sleep(1)  # no checks: silent for longer than two thirds of takeover
        with caplog.at_level(logging.WARNING, logger="publisher.scheduler"):
            assert blind.acquire() is False
            assert "connects as another database role; grant this one pg_read_all_stats" in caplog.text
            assert allowed.acquire() is True
        assert f"'{holder.name}'" in caplog.text and "ending its session to take over" in caplog.text
        assert holder.check() is False
        allowed.release()
    finally:
        for lock in (holder, blind, allowed):
            lock.release()
        with admin.begin() as conn:
            for role in (holder_role, blind_role, allowed_role):
                conn.execute(text(f'REVOKE USAGE ON SCHEMA "{schema}" FROM "{role}"'))
                conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()
