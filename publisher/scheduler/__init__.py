"""Scheduled jobs and the schedule admin tools; jobs only call :class:`Publisher` methods.

What each module holds:

* :mod:`~publisher.scheduler.triggers`: the fire time a run serves, the next runs, and
  which missed fire time a start catches up (trigger arithmetic is
  :mod:`publisher.periods`'s);
* :mod:`~publisher.scheduler.runs`: one job run, whoever starts it, recorded in
  ``job_runs``; orphaned runs of dead processes;
* :mod:`~publisher.scheduler.runner`: :class:`ScheduleRunner` (APScheduler wiring,
  pause polling) and :func:`pause` / :func:`resume`;
* :mod:`~publisher.scheduler.locks`: the cross-process lock that keeps one scheduler
  per store;
* :mod:`~publisher.scheduler.status`: what ``schedules list`` and ``status`` show.

The names below are the ones the daemon, the CLI and the tests use; import them from
here so the split stays an internal matter. Every module logs as ``publisher.scheduler``,
the name the single module had, so admins' log filters keep working.
"""

from __future__ import annotations

from publisher.scheduler.locks import AdvisoryLock, FileLock, SchedulerLock, scheduler_lock
from publisher.scheduler.runner import DEFAULT_POLL_SECONDS, ScheduleRunner, pause, resume
from publisher.scheduler.runs import run_schedule_now
from publisher.scheduler.status import ScheduleInfo, schedules_overview, status_report

__all__ = [
    "DEFAULT_POLL_SECONDS",
    "AdvisoryLock",
    "FileLock",
    "ScheduleInfo",
    "ScheduleRunner",
    "SchedulerLock",
    "pause",
    "resume",
    "run_schedule_now",
    "scheduler_lock",
    "schedules_overview",
    "status_report",
]
