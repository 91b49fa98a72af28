"""Which fire time a run serves, the next ones, and which missed one to catch up.

The daemon, a catch-up after downtime and ``schedules run`` must agree on the fire
time a run serves, or a digest would be keyed to a different period depending on
who started it. Trigger arithmetic itself (cron, intervals, DST) is
:mod:`publisher.periods`'s; this module applies it to a named schedule and to what
the store remembers (first seen, last fire handled, paused).
"""

from __future__ import annotations

import logging
from datetime import datetime

from publisher.config import ScheduleConfig, Settings
from publisher.models import SENDING_JOBS
from publisher.periods import next_fire_times, previous_fire_time, schedule_config, schedule_trigger
from publisher.store import Store

log = logging.getLogger("publisher.scheduler")


def trigger_text(cfg: ScheduleConfig) -> str:
    """The trigger as an admin wrote it, for listings."""
    return f"every {cfg.every}" if cfg.every is not None else f"cron {cfg.cron}"


def fire_time_at(settings: Settings, name: str, now: datetime) -> datetime | None:
    """The fire time a run starting at ``now`` serves: the latest one at or before now."""
    return previous_fire_time(schedule_trigger(settings, name), now)


def next_runs(settings: Settings, name: str, now: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` fire times of schedule ``name`` strictly after ``now``."""
    return next_fire_times(schedule_trigger(settings, name), now, count)


def show_time(when: datetime | None) -> str:
    """A fire time for a log line (``none`` when there is none)."""
    return when.isoformat() if when is not None else "none"


def missed_fire_time(settings: Settings, store: Store, now: datetime, name: str) -> datetime | None:
    """The fire time of ``name`` to catch up at start, or None.

    Records the schedule as first seen at ``now`` if the store never saw it, so a
    first start sends nothing before the next fire time. A sending job's missed fire
    time older than ``catch_up`` is skipped (and marked handled, so it is reported
    once); ingest and build are cheap and always catch up.
    """
    cfg = schedule_config(settings, name)
    runs = store.runs
    state = runs.ensure_schedule(name, now)
    fire = fire_time_at(settings, name, now)
    if state.paused or fire is None or fire <= state.first_seen or state.handled(fire):
        return None
    if cfg.job in SENDING_JOBS and now - fire > cfg.catch_up:
        log.warning(
            "schedule %s: fire time %s was missed more than catch_up=%s ago; not sent",
            name, fire.isoformat(), cfg.catch_up, extra={"job": cfg.job, "schedule": name},
        )  # fmt: skip
        runs.record_fire(name, fire, now)
        return None
    return fire
