"""Scheduled jobs and the schedule admin tools.

What each module holds:

* :mod:`~publisher.scheduler.triggers`: the fire time a run serves, the next runs, and
  which missed fire time a start catches up (trigger arithmetic is
  :mod:`publisher.periods`'s);
* :mod:`~publisher.scheduler.runs`: one job run, whoever starts it, recorded in
  ``job_runs``; orphaned runs of dead processes;
* :mod:`~publisher.scheduler.locks`: the cross-process lock that keeps one scheduler
  per store;
* :mod:`~publisher.scheduler.status`: what ``schedules list`` and ``status`` show;
* :mod:`~publisher.scheduler.runner`: :class:`~publisher.scheduler.runner.ScheduleRunner`
  (APScheduler wiring, pause polling).

The first four are stages: they take ``settings, store, clock`` (or ``now``) and never
import the facade. The runner is a front: it calls :class:`publisher.app.Publisher`
methods only, as the daemon and the CLI do (``Publisher.schedules``, ``status``,
``arun_schedule``, ``pause_schedule``...). This package re-exports nothing, so importing
a stage never drags in the runner (which imports the facade). Every module logs as
``publisher.scheduler``, the name the single module had, so admins' log filters keep
working.
"""
