"""What ``publisher schedules list`` and ``publisher status`` show, read in one place.

The CLI (and later the web console) only formats these dataclasses; the reading of
sources, items, lists, issues, the delivery queue, job runs and schedules stays here
so every front reports the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from publisher.bounces.rates import feedback_rates
from publisher.config import Settings
from publisher.models import JobKind, RunOutcome, SourceState
from publisher.scheduler.triggers import next_runs, trigger_text
from publisher.store import Store
from publisher.store.feedback import FeedbackRates
from publisher.store.issues import IssueSummary
from publisher.store.runs import JobRun
from publisher.store.workers import WorkerRow


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """One row of `schedules list`."""

    name: str
    job: JobKind
    trigger: str
    timezone: str
    next_runs: list[datetime]
    last_run: JobRun | None
    paused: bool

    @property
    def last_outcome(self) -> RunOutcome | None:
        """The last run's outcome, None if the schedule never ran."""
        return self.last_run.outcome if self.last_run else None


def schedules_overview(settings: Settings, store: Store, now: datetime) -> list[ScheduleInfo]:
    """Every configured schedule, by name, with its next three runs (after ``now``) and last outcome."""
    states = store.runs.states()
    last = store.runs.last_by_schedule()
    infos = []
    for name in sorted(settings.schedules):
        cfg = settings.schedules[name]
        state = states.get(name)
        infos.append(
            ScheduleInfo(
                name=name,
                job=cfg.job,
                trigger=trigger_text(cfg),
                timezone=settings.schedule_timezone(name).key,
                next_runs=next_runs(settings, name, now),
                last_run=last.get(name),
                paused=bool(state and state.paused),
            )
        )
    return infos


@dataclass(frozen=True, slots=True)
class ListStatus:
    """One list and how many of its subscribers are in each status."""

    slug: str
    name: str
    schedule: str | None
    subscribers: dict[str, int]
    # Confirmed subscribers the list skips for their language (not in its `languages`).
    unserved: dict[str, int]


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What `publisher status` shows: is everything fetching, sending and running?"""

    sources: list[SourceState]
    items_by_category: dict[str | None, int]
    lists: list[ListStatus]
    recent_issues: list[IssueSummary]
    queue: dict[str, int]
    recent_runs: list[JobRun]
    schedules: list[ScheduleInfo]
    feedback: FeedbackRates | None = None  # bounce and complaint rates, last 30 days
    # Senders holding a live lease now (`publisher worker`, or a daemon's own send).
    workers: list[WorkerRow] = field(default_factory=list)


def status_report(settings: Settings, store: Store, now: datetime, *, limit: int = 10) -> StatusReport:
    """Sources, items, lists, issues, delivery queue and job runs in one read (schedules as of ``now``)."""
    known = {s.name: s for s in store.sources.all()}
    names = [s.name for s in settings.sources] + sorted(set(known) - {s.name for s in settings.sources})
    sources = [known.get(n) or SourceState(n) for n in names]
    lists = [
        ListStatus(
            lst.slug,
            lst.name,
            lst.schedule,
            store.subscribers.counts_by_status(lst.slug),
            store.subscribers.unserved_by_language(lst.slug, lst.languages),
        )
        for lst in settings.lists
    ]
    return StatusReport(
        sources=sources,
        items_by_category=store.items.count_by_category(),
        lists=lists,
        recent_issues=store.issues.summaries(None, limit),
        queue=store.issues.queue_counts(),
        recent_runs=store.runs.recent(limit),
        schedules=schedules_overview(settings, store, now),
        feedback=feedback_rates(store, now),
        workers=store.workers.listing(alive_only=True),
    )
