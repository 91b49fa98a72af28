"""Scheduled jobs and the schedule admin tools (moved into a package; split next)."""

from __future__ import annotations

from publisher.scheduler.runner import (
    DEFAULT_POLL_SECONDS,
    AdvisoryLock,
    FileLock,
    ScheduleInfo,
    SchedulerLock,
    ScheduleRunner,
    pause,
    resume,
    run_schedule_now,
    scheduler_lock,
    schedules_overview,
    status_report,
)

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
