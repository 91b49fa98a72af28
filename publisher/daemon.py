"""`publisher run`: the scheduler and the web server in one process, on one event loop.

Why one process: a small department runs one service (one systemd unit) that fetches,
builds, sends and serves. Why this module owns the signals: SIGTERM must stop new work
first, let a digest send finish its SMTP transactions and only then close the web
server; SIGHUP must swap the configuration without dropping a request. Uvicorn's own
handlers would just stop serving, so they are switched off.

Only one process per store schedules (see ``Publisher.scheduler_lock``); the others
serve the web and take over within ``[scheduler] takeover`` when the scheduler dies
or loses its lock. The scheduler checks its lock every few seconds and stops
scheduling the moment it is lost (its runs in progress finish; fire-time claims keep
them from being served twice); see :mod:`publisher.scheduler.locks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from publisher.app import Clock, Publisher, utcnow
from publisher.config import Settings, load_config
from publisher.errors import ConfigError, PublisherError
from publisher.scheduler.runner import DEFAULT_POLL_SECONDS, ScheduleRunner
from publisher.web.app import create_app
from publisher.web.server import check_port, server_config

if TYPE_CHECKING:
    from publisher.scheduler.locks import SchedulerLock, Timings
    from publisher.scheduler.status import ScheduleInfo

log = logging.getLogger("publisher.daemon")

# A stop must end within 30 s (systemd's default): running jobs get this long to wind
# down, stragglers CANCEL_GRACE_SECONDS more once cancelled, the web server the rest.
JOBS_GRACE_SECONDS = 20.0
CANCEL_GRACE_SECONDS = 2.0
WEB_GRACE_SECONDS = 3


class _Server(uvicorn.Server):
    """Uvicorn without its signal handlers: the daemon decides when the web stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SwappableApp:
    """The ASGI app whose target a reload replaces without closing the socket."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def outbox_text(settings: Settings) -> str:
    if settings.smtp is None:
        return f"outbox: no [smtp] configured; messages go to the Maildir {settings.outbox.path}"
    return f"mail: SMTP {settings.smtp.host}:{settings.smtp.port} ({settings.smtp.security})"


def banner(publisher: Publisher, now: datetime) -> list[str]:
    """The first lines an admin sees: feeds, what runs next, where mail goes, the console."""
    lines = ["feeds:"] + [f"  {url}" for url in publisher.feed_urls()]
    for info in publisher.schedules(now):
        lines.append(
            f"schedule {info.name}: {info.job}, {info.trigger} ({info.timezone}); next run {_next_run(info)}"
        )
    if not publisher.settings.schedules:
        lines.append("no [schedules.*] configured: nothing will run by itself")
    lines.append(outbox_text(publisher.settings))
    lines.append(publisher.admin_banner())
    return lines


def _next_run(info: ScheduleInfo) -> str:
    if info.paused:
        return "paused"
    return info.next_runs[0].isoformat() if info.next_runs else "never"


class Daemon:
    """Owns the publisher, the web server, the scheduler lock and the schedule runner."""

    def __init__(
        self,
        publisher: Publisher,
        config_path: Path,
        *,
        host: str | None = None,
        port: int | None = None,
        poll_interval: float = DEFAULT_POLL_SECONDS,
        lock_retry: float | None = None,
    ) -> None:
        """``lock_retry`` (seconds) overrides the retry interval of a waiting daemon
        (default: a third of ``[scheduler] takeover``, read once at start like the lock)."""
        self.publisher = publisher
        self.config_path = config_path
        self.poll_interval = poll_interval
        self.timings: Timings = publisher.scheduler_timings()
        self.lock_retry = lock_retry if lock_retry is not None else self.timings.retry
        self.lock: SchedulerLock = publisher.scheduler_lock()
        # Every lock call runs on this one thread: a database call that hangs (a vanished
        # server) never blocks the web, and the lock's connection is never used by two
        # threads at once.
        self._lock_thread = ThreadPoolExecutor(1, thread_name_prefix="scheduler-lock")
        self._starting = asyncio.Lock()
        self.runner: ScheduleRunner | None = None
        self.retired: list[ScheduleRunner] = []
        self.busy: dict[str, asyncio.Lock] = {}
        self.stopping = asyncio.Event()
        self.web = SwappableApp(create_app(publisher, reload=self.reload))
        self._closing: set[asyncio.Task[None]] = set()
        self.server = _Server(
            server_config(
                self.web, publisher.settings.web, host=host, port=port, graceful_shutdown=WEB_GRACE_SECONDS
            )
        )

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self) -> int:
        try:
            check_port(self.server.config.host, self.server.config.port)
        except PublisherError as e:
            log.error("%s", e)
            self.publisher.close()
            return 1
        for line in banner(self.publisher, self.publisher.clock()):
            log.info("%s", line)
        self._install_signals()
        web_task = asyncio.create_task(self._serve())
        if not await self._web_started(web_task):
            self.publisher.close()
            return 1
        log.info(
            "web: serving %s on http://%s:%d/",
            self.publisher.settings.feeds.output_dir, self.server.config.host, self.server.config.port,
        )  # fmt: skip
        # A configuration changed while the daemon was down (a list made private) must
        # not wait for new items to reach public/; the web serves meanwhile.
        rebuild = asyncio.create_task(self.rebuild_if_reconfigured())
        self._closing.add(rebuild)
        rebuild.add_done_callback(self._closing.discard)
        lock_task = asyncio.create_task(self._schedule_when_locked())
        stop_task = asyncio.create_task(self.stopping.wait())
        await asyncio.wait({web_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        code = 0 if self.stopping.is_set() else 1
        lock_task.cancel()
        await self._stop_work()
        self.server.should_exit = True
        await web_task
        with contextlib.suppress(TimeoutError):  # a hung lock connection dies with the process
            await asyncio.wait_for(self._lock_call(self.lock.release), 5)
        self._lock_thread.shutdown(wait=False)
        self.publisher.close()
        log.info("stopped")
        return code

    async def _serve(self) -> None:
        try:
            await self.server.serve()
        except SystemExit:  # uvicorn exits when it cannot bind or start the app
            log.error(
                "the web server could not start on %s:%d", self.server.config.host, self.server.config.port
            )

    async def _web_started(self, web_task: asyncio.Task[None]) -> bool:
        while not self.server.started:
            if web_task.done():
                return False
            await asyncio.sleep(0.05)
        return True

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self._spawn_reload)

    def request_stop(self, sig: int | None = None) -> None:
        if self.stopping.is_set():
            log.warning("already stopping; waiting for running jobs")
            return
        log.info(
            "%s received: no new work; finishing running jobs", signal.Signals(sig).name if sig else "stop"
        )
        self.stopping.set()

    async def _stop_work(self) -> None:
        """Stop scheduling, tell running sends to wind down, wait for them (one deadline for all)."""
        runners = [r for r in [self.runner, *self.retired] if r is not None]
        for runner in runners:
            runner.stop_taking_work()
        for pub in {id(r.publisher): r.publisher for r in runners}.values():
            pub.request_stop()
        running = [t for r in runners for t in r.running_tasks()]
        if not running:
            return
        _done, left = await asyncio.wait(running, timeout=JOBS_GRACE_SECONDS)
        if left:
            log.error("jobs still running after %.0f s; cancelling them", JOBS_GRACE_SECONDS)
            for task in left:
                task.cancel()
            await asyncio.wait(left, timeout=CANCEL_GRACE_SECONDS)

    # -- one scheduler per store ------------------------------------------------------------

    async def _schedule_when_locked(self) -> None:
        """Wait for the lock, schedule while it is held, check it, and start over when it is lost."""
        announced = False
        first = True  # the banner has just shown the next runs; do not repeat them
        while not self.stopping.is_set():
            if self.runner is None:
                started = await self._try_start(log_next_runs=not first)
                first = False
                if started:
                    announced = False
                    continue
                if not announced:
                    log.warning(
                        "another publisher run holds the scheduler lock (%s): not scheduling, "
                        "serving the web only; retrying every %g s",
                        self.lock.description, self.lock_retry,
                    )  # fmt: skip
                    announced = True
                await self._pause(self.lock_retry)
                continue
            await self._pause(self.timings.check_every)
            if self.runner is None or self.stopping.is_set():
                continue
            why = await self._check_lock()
            if why is not None and self.runner is not None and not self.stopping.is_set():
                self._lose_lock(why)
                # Waiting daemons get the first go (they retry three times per takeover);
                # if none takes the lock, this one takes it back.
                await self._pause(self.timings.takeover)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _lock_call(self, call: Callable[[], bool | None]) -> bool | None:
        return await asyncio.get_running_loop().run_in_executor(self._lock_thread, call)

    async def _check_lock(self) -> str | None:
        """None while the lock is ours; else why it is lost.

        A check that does not answer within a third of ``takeover`` counts as lost: a
        waiting daemon may end a session silent for ``takeover`` and take over.
        """
        check = asyncio.ensure_future(self._lock_call(self.lock.check))
        try:
            held = await asyncio.wait_for(asyncio.shield(check), self.timings.check_timeout)
        except TimeoutError:
            return f"its database connection did not answer within {self.timings.check_timeout:g} s"
        except Exception as e:  # a bug in a check must not leave a lost lock's holder scheduling
            return f"checking it failed: {e}"
        return None if held else self.lock.why_lost or "it is no longer held"

    def _lose_lock(self, why: str) -> None:
        """Stop scheduling at once; runs in progress go on (their fire-time claims stay valid)."""
        runner = self.runner
        assert runner is not None
        runner.stop_taking_work()
        self.retired.append(runner)
        self.runner = None
        log.error(
            "lost the scheduler lock (%s): %s. Not scheduling any more (runs in progress go on); "
            "another daemon may take over. Trying to take the lock again in %g s",
            self.lock.description, why, self.timings.takeover,
        )  # fmt: skip
        # Let go of the connection (the check already closed a failed one); queued behind
        # a check that still hangs, never run beside it.
        self._lock_thread.submit(self.lock.release)

    async def _try_start(self, *, log_next_runs: bool = True) -> bool:
        async with self._starting:  # the lock loop and a reload may both try; one runner only
            if self.runner is not None:
                return True
            try:
                got = await self._lock_call(self.lock.acquire)
            except PublisherError as e:
                log.error("%s", e)
                return False
            if not got or self.stopping.is_set():
                return False
            return await self._start_runner(log_next_runs)

    async def _start_runner(self, log_next_runs: bool) -> bool:
        self._prune_retired()
        runner = ScheduleRunner(self.publisher, poll_interval=self.poll_interval, busy=self.busy)
        await runner.start()
        self.runner = runner
        log.info(
            "scheduling %d schedule(s) (%s)", len(self.publisher.settings.schedules), self.lock.description
        )
        if log_next_runs:
            for name, when in runner.next_run_times().items():
                log.info("schedule %s: next run %s", name, when.isoformat() if when else "paused")
        return True

    # -- SIGHUP -----------------------------------------------------------------------------

    def _spawn_reload(self) -> None:
        task = asyncio.create_task(self.reload())
        task.add_done_callback(_log_crash)

    async def reload(self) -> bool:
        """Load the config again; on any error keep the running one and say why.

        SIGHUP calls it, and so does the admin console after it edited config.toml.
        """
        log.info("reloading %s", self.config_path)
        try:
            settings = load_config(self.config_path)
            new = self.publisher.reconfigured(settings)
        except PublisherError as e:
            for line in str(e).splitlines():
                log.error("config error: %s", line.strip().removeprefix("- "))
            log.error("reload failed; keeping the running configuration")
            return False
        self._swap(new)
        if self.runner is None and not self.stopping.is_set():
            await self._try_start()
        await self.rebuild_if_reconfigured()
        log.info(
            "configuration reloaded: %d schedule(s): %s",
            len(settings.schedules), ", ".join(sorted(settings.schedules)) or "none",
        )  # fmt: skip
        return True

    async def rebuild_if_reconfigured(self) -> None:
        """Rebuild public/ when the configuration or the page templates of what it publishes
        changed since its last build (:meth:`Publisher.build_if_reconfigured`); a failure
        is logged, never raised: the daemon goes on serving, and the next build tries again."""
        publisher = self.publisher
        try:
            report = await asyncio.to_thread(publisher.build_if_reconfigured)
        except PublisherError as e:
            out = publisher.settings.feeds.output_dir
            log.error("cannot rebuild %s for the new configuration: %s", out, e)
            return
        if report is not None:
            log.info(
                "the configuration or templates of what is published changed: rebuilt %s "
                "(%d file(s) written, %d deleted)",
                publisher.settings.feeds.output_dir, len(report.written), len(report.deleted),
            )  # fmt: skip

    def _swap(self, new: Publisher) -> None:
        old = self.publisher
        if new.settings.web != old.settings.web:
            log.warning("[web] changes (host, port, timeouts) take effect at the next restart")
        if self.runner is not None:
            self.runner.stop_taking_work()
            self.retired.append(self.runner)
            self.runner = None
        self._prune_retired()
        if not new.shares_store(old):
            self._lock_thread.submit(self.lock.release)
            self.lock = new.scheduler_lock()
            task = asyncio.create_task(self._close_when_idle(old))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self.publisher = new
        self.web.app = create_app(new, reload=self.reload)

    def _prune_retired(self) -> None:
        """Forget retired generations whose runs have all ended."""
        self.retired = [r for r in self.retired if r.running_tasks()]

    async def _close_when_idle(self, old: Publisher) -> None:
        for runner in [r for r in self.retired if r.publisher is old]:
            await runner.wait_idle(None)
        self._prune_retired()
        old.close()


def _log_crash(task: asyncio.Task[bool]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("reload crashed", exc_info=task.exception())


async def run_daemon(
    config_path: Path,
    *,
    clock: Clock | None = None,
    host: str | None = None,
    port: int | None = None,
    poll_interval: float = DEFAULT_POLL_SECONDS,
    lock_retry: float | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean stop, 1 if the web server died, 2 for config.

    ``host``/``port`` override ``[web]`` (the CLI's --host/--port); the intervals say how
    often the store's pause flags and the scheduler lock are polled (the lock's default:
    a third of ``[scheduler] takeover``).
    """
    try:
        settings = load_config(config_path)
        publisher = Publisher(settings, clock=clock or utcnow)
    except ConfigError as e:
        for line in str(e).splitlines():
            log.error("config error: %s", line.strip().removeprefix("- "))
        return 2
    except PublisherError as e:
        log.error("%s", e)
        return 1
    daemon = Daemon(
        publisher, config_path, host=host, port=port, poll_interval=poll_interval, lock_retry=lock_retry
    )
    return await daemon.run()
