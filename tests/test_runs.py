"""RunStore on SQLite and PostgreSQL: schedule state and job runs survive restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from publisher.models import JobKind, RunOutcome
from publisher.store import Store

T0 = datetime(2026, 5, 4, 7, 0, tzinfo=UTC)


def test_first_seen_is_recorded_once(store: Store) -> None:
    first = store.runs.ensure_schedule("daily", T0)
    again = store.runs.ensure_schedule("daily", T0 + timedelta(days=3))
    assert first.first_seen == T0
    assert again.first_seen == T0
    assert again.paused is False and again.last_fire is None
    assert store.runs.state("other") is None


def test_pause_flag_is_kept(store: Store) -> None:
    store.runs.set_paused("daily", True, T0)
    assert store.runs.states()["daily"].paused is True
    store.runs.set_paused("daily", False, T0 + timedelta(minutes=1))
    assert store.runs.states()["daily"].paused is False
    assert store.runs.states()["daily"].first_seen == T0


def test_last_fire_never_moves_back(store: Store) -> None:
    later = T0 + timedelta(days=1)
    store.runs.record_fire("daily", later, T0)
    store.runs.record_fire("daily", T0, T0)
    state = store.runs.state("daily")
    assert state is not None and state.last_fire == later


def test_run_is_recorded_from_start_to_end(store: Store) -> None:
    run_id = store.runs.start("digest", schedule="daily", fire_time=T0, now=T0, owner={"host": "h", "pid": 1})
    running = store.runs.get(run_id)
    assert running is not None
    assert running.outcome == RunOutcome.RUNNING and running.ended is None
    assert running.counts == {"host": "h", "pid": 1}

    ended = T0 + timedelta(seconds=5)
    store.runs.finish(run_id, outcome=RunOutcome.OK, now=ended, counts={"sent": 3, "ok": True})
    done = store.runs.get(run_id)
    assert done is not None
    assert (done.outcome, done.ended, done.counts, done.fire_time) == (
        RunOutcome.OK,
        ended,
        {"sent": 3, "ok": True},
        T0,
    )
    assert done.ok
    assert done.outcome is RunOutcome.OK and done.job is JobKind.DIGEST  # enums, not bare strings


def test_recent_and_last_by_schedule(store: Store) -> None:
    ids = []
    for i, (schedule, outcome) in enumerate(
        [("a", RunOutcome.OK), ("b", RunOutcome.OK), ("a", RunOutcome.FAILED), (None, RunOutcome.OK)]
    ):
        started = T0 + timedelta(minutes=i)
        run_id = store.runs.start("build", schedule=schedule, fire_time=None, now=started)
        store.runs.finish(
            run_id, outcome=outcome, now=started, error="boom" if outcome == RunOutcome.FAILED else None
        )
        ids.append(run_id)
    assert [r.id for r in store.runs.recent(10)] == ids[::-1]
    assert [r.id for r in store.runs.recent(10, schedule="a")] == [ids[2], ids[0]]
    last = store.runs.last_by_schedule()
    assert set(last) == {"a", "b"}
    assert last["a"].outcome == RunOutcome.FAILED and last["a"].error == "boom"


def test_orphaned_runs_can_be_marked_interrupted(store: Store) -> None:
    orphan = store.runs.start("digest", schedule="daily", fire_time=T0, now=T0)
    live = store.runs.start("ingest", schedule="often", fire_time=T0, now=T0)
    assert {r.id for r in store.runs.running()} == {orphan, live}
    store.runs.mark_interrupted([orphan], T0 + timedelta(hours=1))
    marked = store.runs.get(orphan)
    assert marked is not None and marked.outcome == RunOutcome.INTERRUPTED and marked.error
    assert [r.id for r in store.runs.running()] == [live]
