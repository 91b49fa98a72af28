"""Schedule triggers and digest periods, shared by the scheduler and the digests.

A digest issue is keyed by the start of the schedule period that contains its send:
the latest fire time at or before the moment of sending. Computing it from the same
APScheduler trigger that fires the job means a scheduled send, a catch-up after
downtime and a manual ``digest send`` all agree on the key, so the store's unique
(list, period) constraint is what prevents a second send, not process memory.

APScheduler 3 triggers compute fire times in the schedule's own time zone, which is
what keeps "every Monday at 09:00 Europe/Zurich" at 09:00 local across DST changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from publisher.config import ScheduleConfig, Settings
from publisher.errors import SchedulerError
from publisher.i18n import format_day

# Interval schedules are anchored at a fixed instant so their periods do not depend on
# when the process started (a restart must not shift every period).
INTERVAL_ANCHOR = datetime(2000, 1, 3)  # a Monday, local midnight in the schedule's zone
_SEARCH_WINDOWS = (
    timedelta(hours=2),
    timedelta(days=2),
    timedelta(days=8),
    timedelta(days=32),
    timedelta(days=367),
    timedelta(days=366 * 8),
)
_TICK = timedelta(microseconds=1)
_UTC = ZoneInfo("UTC")


def _after(moment: datetime) -> datetime:
    """One tick later, computed in UTC: wall-clock arithmetic on the second (fold=1)
    occurrence of a repeated local time would go back an hour and loop forever."""
    return moment.astimezone(_UTC) + _TICK


class WallClockCronTrigger(CronTrigger):  # type: ignore[misc]
    """A cron trigger that fires a fixed-hour time once when the clock falls back.

    At a fall-back transition the local hour repeats; APScheduler 3.11 fires
    "30 2 * * *" at both 02:30s. Like cron, keep the first and skip the repeat, so a
    daily digest has one period per day (wildcard-hour schedules keep every run).
    """

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        fire: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        while fire is not None and self._is_repeat(fire):
            fire = super().get_next_fire_time(fire, _after(fire))
        return fire

    def _is_repeat(self, fire: datetime) -> bool:
        if fire.fold != 1 or str(self.fields[5]) == "*":
            return False
        return fire.replace(fold=0).utcoffset() != fire.utcoffset()


def make_trigger(cfg: ScheduleConfig, tz: ZoneInfo) -> BaseTrigger:
    """The APScheduler trigger for one ``[schedules.NAME]`` table."""
    if cfg.cron is not None:
        try:
            trigger: BaseTrigger = WallClockCronTrigger.from_crontab(cfg.cron, timezone=tz)
            return trigger
        except ValueError as e:
            raise SchedulerError(f"cron {cfg.cron!r}: {e}") from e
    assert cfg.every is not None  # the config validator guarantees one of the two
    return IntervalTrigger(
        seconds=int(cfg.every.total_seconds()),
        start_date=INTERVAL_ANCHOR.replace(tzinfo=tz),
        timezone=tz,
    )


def schedule_config(settings: Settings, name: str) -> ScheduleConfig:
    """The config of schedule ``name``; an unknown name is a SchedulerError naming the known."""
    try:
        return settings.schedules[name]
    except KeyError:
        known = ", ".join(sorted(settings.schedules)) or "none configured"
        raise SchedulerError(f"unknown schedule {name!r}; known schedules: {known}") from None


def schedule_trigger(settings: Settings, name: str) -> BaseTrigger:
    return make_trigger(schedule_config(settings, name), settings.schedule_timezone(name))


def next_fire_times(trigger: BaseTrigger, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after``."""
    times: list[datetime] = []
    previous: datetime | None = None
    now = _after(after)
    while len(times) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous, now = fire, _after(fire)
    return times


def fire_times_between(trigger: BaseTrigger, start: datetime, end: datetime) -> list[datetime]:
    """Every fire time in [start, end] (used for catch-up and period search)."""
    times: list[datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= end:
        times.append(fire)
        fire = trigger.get_next_fire_time(fire, _after(fire))
    return times


def previous_fire_time(trigger: BaseTrigger, at: datetime) -> datetime | None:
    """The latest fire time at or before ``at``; None if the trigger never fired."""
    for window in _SEARCH_WINDOWS:
        times = fire_times_between(trigger, at - window, at)
        if times:
            return times[-1]
    return None


def period_start(settings: Settings, schedule: str | None, at: datetime) -> datetime:
    """Start of the period containing ``at``: the schedule's last fire time.

    A list without a schedule is sent by hand only; its period is the calendar day
    (site time zone) so that ``digest send`` twice on one day sends once.
    """
    if schedule is None:
        local = at.astimezone(settings.site.tz)
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    fire = previous_fire_time(schedule_trigger(settings, schedule), at)
    if fire is None:
        # Before the very first fire time: the period that is about to start.
        return next_fire_times(schedule_trigger(settings, schedule), at, 1)[0]
    return fire


def period_key(start: datetime) -> str:
    """The stored key of a period: its start in UTC, ISO 8601 to the second."""
    return start.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def period_label(settings: Settings, when: datetime, language: str) -> str:
    """The day an issue is dated by, in the reader's language and the site's zone.

    Its send day, not the start of its period: an issue sent on Monday 30 November
    says "30 November", which is what a reader sees in the inbox too.
    """
    return format_day(when, language, tz=settings.site.tz)
