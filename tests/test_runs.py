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


# -- fire-time claims: several daemons, each fire time served once ----------------------------

TTL = timedelta(seconds=30)


def test_a_live_claim_blocks_other_claimers_and_says_who_holds_it(store: Store) -> None:
    runs = store.runs
    assert runs.claim_fire("often", T0, "a:1", TTL, now=T0).granted
    refused = runs.claim_fire("often", T0, "b:2", TTL, now=T0 + timedelta(seconds=29))
    assert not refused.granted and not refused.handled
    assert (refused.holder, refused.holder_fire, refused.holder_until) == ("a:1", T0, T0 + TTL)
    assert refused.lapses_in == timedelta(seconds=1)
    # An earlier fire time is covered by a live claim on a later one.
    assert not runs.claim_fire("often", T0 - timedelta(minutes=15), "b:2", TTL, now=T0).granted
    # A later fire time is not: the holder is busy with an older one.
    assert runs.claim_fire("often", T0 + timedelta(minutes=15), "b:2", TTL, now=T0).granted


def test_a_renewed_claim_stays_live_and_a_lapsed_one_can_be_taken(store: Store) -> None:
    runs = store.runs
    assert runs.claim_fire("often", T0, "a:1", TTL, now=T0).granted
    assert runs.renew_claim("often", T0, "a:1", TTL, now=T0 + timedelta(seconds=20))
    assert not runs.claim_fire("often", T0, "b:2", TTL, now=T0 + timedelta(seconds=45)).granted
    # a:1 crashed: nobody renews; after the claim lapses another daemon may serve the fire time.
    late = T0 + timedelta(seconds=51)
    assert runs.claim_fire("often", T0, "b:2", TTL, lapsed_from="a:1", now=late).granted
    assert not runs.renew_claim("often", T0, "a:1", TTL, now=late)  # no longer a:1's
    state = runs.state("often")
    assert state is not None and state.last_fire is None


def test_a_failure_releases_the_claim_and_leaves_the_fire_time_unserved(store: Store) -> None:
    runs = store.runs
    assert runs.claim_fire("often", T0, "a:1", TTL, now=T0).granted
    runs.finish_claim("often", T0, "a:1", served=False, now=T0 + timedelta(seconds=5))
    # A crashed daemon's lapsed claim is not what a waiting daemon finds: nothing to take over.
    later = T0 + timedelta(minutes=1)
    assert not runs.claim_fire("often", T0, "b:2", TTL, lapsed_from="a:1", now=later).granted
    # A later catch-up serves it.
    assert runs.claim_fire("often", T0, "b:2", TTL, now=T0 + timedelta(seconds=6)).granted


def test_a_success_marks_the_fire_time_served_for_everyone(store: Store) -> None:
    runs = store.runs
    assert runs.claim_fire("often", T0, "a:1", TTL, now=T0).granted
    runs.finish_claim("often", T0, "a:1", served=True, now=T0 + timedelta(seconds=5))
    state = runs.state("often")
    assert state is not None and state.last_fire == T0
    for claimer in ("a:1", "b:2"):
        refused = runs.claim_fire("often", T0, claimer, TTL, now=T0 + timedelta(minutes=5))
        assert not refused.granted and refused.handled
    assert runs.claim_fire("often", T0 + timedelta(minutes=15), "b:2", TTL, now=T0).granted


def test_a_success_after_losing_the_claim_leaves_the_new_claim_alone(store: Store) -> None:
    runs = store.runs
    assert runs.claim_fire("often", T0, "a:1", TTL, now=T0).granted
    later = T0 + timedelta(minutes=15)
    assert runs.claim_fire("often", later, "b:2", TTL, now=T0 + timedelta(seconds=5)).granted
    runs.finish_claim("often", T0, "a:1", served=True, now=T0 + timedelta(seconds=6))
    refused = runs.claim_fire("often", later, "c:3", TTL, now=T0 + timedelta(seconds=7))
    assert (refused.granted, refused.holder) == (False, "b:2")


def test_claims_use_the_database_clock_by_default(store: Store) -> None:
    runs = store.runs
    fire = datetime.now(UTC) - timedelta(seconds=1)
    assert runs.claim_fire("often", fire, "a:1", timedelta(seconds=5)).granted
    refused = runs.claim_fire("often", fire, "b:2", timedelta(seconds=5))
    assert refused.lapses_in is not None and timedelta(seconds=3) < refused.lapses_in <= timedelta(seconds=5)


def test_racing_claimers_get_one_grant(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store.runs.ensure_schedule("often", T0)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: store.runs.claim_fire("often", T0, f"h:{i}", TTL), range(8)))
    assert sum(a.granted for a in answers) == 1


def test_a_live_claim_blocks_its_own_process_too(store: Store) -> None:
    """The console's "run now" runs in the daemon's process, beside the scheduled run."""
    assert store.runs.claim_fire("often", T0, "a:1", TTL, now=T0).granted
    assert not store.runs.claim_fire("often", T0, "a:1", TTL, now=T0 + timedelta(seconds=1)).granted
