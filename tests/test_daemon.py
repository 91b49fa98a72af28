"""`publisher run` as an admin runs it: a real process, real HTTP, real signals.

Each test starts ``python -m publisher.cli run --config ...`` on a temporary config
with a free port and watches what it logs and serves.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from publisher.app import Publisher
from publisher.config import Settings, load_config
from publisher.daemon import Daemon as DaemonProcess
from publisher.models import JobKind
from publisher.store import Store
from tests.http_server import Upstream, drip
from tests.slow_clients import seconds_until_closed
from tests.smtp_server import free_port

REPO = Path(__file__).parent.parent

pytestmark = pytest.mark.slow

CONFIG = """
[site]
timezone = "Europe/Zurich"
postal_address = "1 Main Street, Geneva"
base_url = "http://127.0.0.1:{port}"

[storage]
url = "sqlite:///{db}"

[feeds]
output_dir = "public"

[web]
host = "127.0.0.1"
port = {port}

[outbox]
path = "outbox"

{schedules}
"""


def write_config(path: Path, port: int, db: Path, schedules: str) -> None:
    path.write_text(CONFIG.format(port=port, db=db, schedules=schedules), encoding="utf-8")


class Daemon:
    """One `publisher run` process and its log."""

    def __init__(self, config: Path, port: int, log: Path) -> None:
        self.port = port
        self.log_path = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "publisher.cli", "run", "--config", str(config)],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, timeout: float = 15) -> float:
        """Seconds until ``text`` appears in the log; fail if it does not in time."""
        start = time.monotonic()
        while text not in self.log:
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited ({self.proc.returncode}) before logging {text!r}:\n{self.log}")
            if time.monotonic() - start > timeout:
                pytest.fail(f"{text!r} not logged within {timeout} s:\n{self.log}")
            time.sleep(0.05)
        return time.monotonic() - start

    def get(self, path: str = "/healthz") -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def wait_http(self, timeout: float = 20) -> None:
        start = time.monotonic()
        while True:
            try:
                if self.get().status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() - start > timeout:
                pytest.fail(f"daemon does not serve HTTP on port {self.port}:\n{self.log}")
            time.sleep(0.1)

    def stop(self, timeout: float = 30) -> tuple[int, float]:
        """SIGTERM; return the exit code and how long the process took to exit."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - start

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    daemons: list[Daemon] = []

    def make(config: Path, port: int, name: str = "daemon") -> Daemon:
        d = Daemon(config, port, tmp_path / f"{name}.log")
        daemons.append(d)
        return d

    yield make
    for d in daemons:
        d.close()


TICK = """
[schedules.tick]
every = "1s"
job = "build"
"""

HOURLY = """
[schedules.hourly]
every = "1h"
job = "build"
"""

WEEKLY = """
[schedules.weekly]
cron = "0 9 * * mon"
job = "digest"
"""


def test_sigterm_finishes_and_exits_zero_within_30_seconds(
    tmp_path: Path, start: Callable[..., Daemon]
) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    write_config(config, port, tmp_path / "var" / "publisher.db", TICK + WEEKLY)
    daemon = start(config, port)
    daemon.wait_http()
    daemon.wait_log("schedule tick: build finished")  # the real build job ran
    assert daemon.get("/feeds/all.atom.xml").status_code == 200

    code, seconds = daemon.stop()
    assert code == 0
    assert seconds < 30
    log = daemon.log
    assert "SIGTERM received: no new work" in log
    assert log.rstrip().endswith("stopped")


def test_first_lines_say_where_feeds_schedules_and_mail_are(
    tmp_path: Path, start: Callable[..., Daemon]
) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    write_config(config, port, tmp_path / "var" / "publisher.db", WEEKLY)
    daemon = start(config, port)
    daemon.wait_log("web: serving")
    lines = daemon.log.splitlines()
    banner = lines[: next(i for i, line in enumerate(lines) if "web: serving" in line)]
    text = "\n".join(banner)
    assert f"http://127.0.0.1:{port}/feeds/all.atom.xml" in text
    assert "schedule weekly: digest, cron 0 9 * * mon (Europe/Zurich); next run " in text
    assert f"messages go to the Maildir {tmp_path / 'outbox'}" in text
    daemon.wait_log("scheduling 1 schedule(s)")
    assert daemon.log.count("next run") == 1  # the banner says it; the scheduler start does not repeat it
    assert daemon.stop()[0] == 0


def test_sighup_reloads_a_good_config_and_keeps_running_on_a_bad_one(
    tmp_path: Path, start: Callable[..., Daemon]
) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    db = tmp_path / "var" / "publisher.db"
    write_config(config, port, db, HOURLY)
    daemon = start(config, port)
    daemon.wait_log("scheduling 1 schedule(s)")

    write_config(config, port, db, HOURLY + WEEKLY)
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("configuration reloaded: 2 schedule(s): hourly, weekly")
    daemon.wait_log("schedule weekly: next run ")

    write_config(config, port, db, HOURLY + WEEKLY + '\n[schedules.broken]\nevery = "soon"\njob = "build"\n')
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("reload failed; keeping the running configuration")
    assert "config error: schedules.broken.every: 'soon' is not a duration" in daemon.log
    assert daemon.proc.poll() is None
    assert daemon.get().status_code == 200
    assert daemon.stop()[0] == 0


def test_second_daemon_serves_the_web_and_takes_over_when_the_first_dies(
    tmp_path: Path, start: Callable[..., Daemon]
) -> None:
    db = tmp_path / "var" / "publisher.db"
    first_port, second_port = free_port(), free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    takeover = '[scheduler]\ntakeover = "6s"\n\n'  # waiting daemons retry every 2 s
    write_config(tmp_path / "a" / "config.toml", first_port, db, takeover + HOURLY)
    write_config(tmp_path / "b" / "config.toml", second_port, db, takeover + HOURLY)

    first = start(tmp_path / "a" / "config.toml", first_port, "first")
    first.wait_log("scheduling 1 schedule(s)")
    second = start(tmp_path / "b" / "config.toml", second_port, "second")
    second.wait_log("holds the scheduler lock")
    assert "not scheduling, serving the web only" in second.log
    second.wait_http()
    assert "scheduling 1 schedule(s)" not in second.log

    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    took_over = second.wait_log("scheduling 1 schedule(s)", timeout=10)
    assert took_over < 5
    assert second.get().status_code == 200
    assert second.stop()[0] == 0


class WindingDownPublisher(Publisher):
    """A real Publisher whose job runs until asked to stop, like a long digest send."""

    job_started = False

    async def arun_job(
        self, job: str, *, schedule: str | None = None, fire_time: datetime | None = None
    ) -> dict[str, Any]:
        self.job_started = True
        while not self.stop_requested():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the SMTP transactions in flight
        return {"ok": True, "left_queued": 7}


def test_sigterm_lets_a_running_job_wind_down_and_records_it(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(schedules={"tick": {"every": "1s", "job": "digest"}}, web={"port": free_port()})
    publisher = WindingDownPublisher(settings)
    daemon = DaemonProcess(publisher, tmp_path / "config.toml", poll_interval=0.1)

    async def scenario() -> int:
        running = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 5
        while not publisher.job_started:
            assert time.monotonic() < deadline, "the job never started"
            await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        return await asyncio.wait_for(running, 30)

    assert asyncio.run(scenario()) == 0
    store = Store(settings.storage.url)
    [run] = store.runs.recent(5)
    assert (run.outcome, run.counts) == ("ok", {"ok": True, "left_queued": 7})
    store.close()


class StubbornPublisher(Publisher):
    """A real Publisher whose job never looks at stop_requested(), like a hung SMTP server."""

    job_started = False

    async def arun_job(
        self, job: str, *, schedule: str | None = None, fire_time: datetime | None = None
    ) -> dict[str, Any]:
        self.job_started = True
        while True:
            await asyncio.sleep(0.05)


def test_sigterm_cancels_a_job_that_ignores_stop_after_the_grace_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("publisher.daemon.JOBS_GRACE_SECONDS", 1)
    port, db, config = free_port(), tmp_path / "publisher.db", tmp_path / "config.toml"
    write_config(config, port, db, '[schedules.tick]\nevery = "1s"\njob = "digest"\n')
    publisher = StubbornPublisher(load_config(config))
    daemon = DaemonProcess(publisher, config, poll_interval=0.1)

    async def scenario() -> tuple[int, float]:
        running = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + 5
        while not publisher.job_started:
            assert time.monotonic() < deadline, "the job never started"
            await asyncio.sleep(0.05)
        write_config(config, port, db, HOURLY)
        assert await daemon.reload()  # the old generation, still running the job, is retired
        assert daemon.retired and daemon.runner is not None
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        code = await asyncio.wait_for(running, 30)
        return code, time.monotonic() - started

    code, took = asyncio.run(scenario())
    assert code == 0
    assert took < 2.5  # 1 s of grace, then cancelled at once (not after the 2 s cancel grace)
    store = Store(f"sqlite:///{db}")
    [run] = store.runs.recent(5)
    assert (run.schedule, run.outcome, run.error) == ("tick", "interrupted", "cancelled at shutdown")
    store.close()


def test_sigterm_mid_send_finishes_in_flight_and_leaves_the_rest_queued(
    tmp_path: Path, start: Callable[..., Daemon], smtp_server: Any
) -> None:
    """A real `publisher run` sending a real digest over SMTP gets SIGTERM half-way."""
    from collections import Counter
    from datetime import UTC, timedelta

    from publisher.config import load_config
    from publisher.models import Item
    from publisher.subscriptions import import_csv
    from tests.smtp_server import Rule

    port, db, config = free_port(), tmp_path / "p.db", tmp_path / "config.toml"
    schedules = f"""
[smtp]
host = "{smtp_server.host}"
port = {smtp_server.port}
connections = 2

[delivery]
batch_size = 20

[[sources]]
name = "sample"
type = "directory"
path = "content"

[[lists]]
slug = "weekly"
name = "Weekly"
sender = "News <news@example.org>"
schedule = "often"

[schedules.often]
every = "2s"
job = "digest"
"""
    write_config(config, port, db, schedules)
    settings = load_config(config)
    store = Store(settings.storage.url)
    now = datetime.now(UTC)
    store.items.save(
        [
            Item(
                id="urn:x:1",
                source="sample",
                title="One",
                link="https://example.org/1",
                published=now - timedelta(hours=1),
                updated=now,
                language="en",
                category=None,
                content_hash="h",
            )
        ],
        [],
        now,
    )
    total = 200
    csv = tmp_path / "subs.csv"
    csv.write_text("email,name\n" + "".join(f"r{i}@example.org,R {i}\n" for i in range(total)))
    import_csv(settings, store, "weekly", csv, now=datetime.now(UTC))
    smtp_server.script(Rule("data", delay=0.05))  # 2 connections: about 40 messages a second

    daemon = start(config, port)
    deadline = time.monotonic() + 30
    while len(smtp_server.accepted()) < 20:
        assert time.monotonic() < deadline, f"no digest went out:\n{daemon.log}"
        time.sleep(0.05)
    code, took = daemon.stop()
    assert code == 0 and took < 30, daemon.log
    delivered = len(smtp_server.accepted())
    assert delivered < total, "the send finished before SIGTERM; slow the server down"

    (row,) = Publisher(settings, store).digest_status()
    assert row.sending == 0 and row.unknown == 0  # in-flight transactions were finished
    assert row.sent == delivered and row.pending == total - delivered  # the rest stays queued

    smtp_server.script()
    publisher = Publisher(settings, store)
    asyncio.run(publisher.send_digest("weekly", at=row.period_start))
    per_recipient = Counter(r for m in smtp_server.accepted() for r in m.rcpt_tos)
    assert len(per_recipient) == total and set(per_recipient.values()) == {1}
    store.close()


def test_idle_and_trickling_connections_are_closed_after_the_web_timeouts(
    tmp_path: Path, start: Callable[..., Daemon]
) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    write_config(config, port, tmp_path / "var" / "publisher.db", "")
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace(f"port = {port}\n", f"port = {port}\nkeep_alive_timeout = 1\nheader_timeout = 1\n", 1),
        encoding="utf-8",
    )
    daemon = start(config, port)
    daemon.wait_http()
    assert seconds_until_closed(port) < 3
    assert seconds_until_closed(port, trickle=b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 40) < 3
    assert seconds_until_closed(port, first=b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") < 3
    assert daemon.stop()[0] == 0


def test_sigterm_during_a_stuck_fetch_exits_within_seconds(
    tmp_path: Path, start: Callable[..., Daemon], upstream: Upstream
) -> None:
    upstream.routes["/news"] = drip(0.3)  # never finishes; per-read timeouts never fire
    port = free_port()
    config = tmp_path / "config.toml"
    source = f"""
[[sources]]
name = "dripping"
type = "feed"
url = "{upstream.url("/news")}"
timeout = 600

[schedules.pull]
every = "1s"
job = "ingest"
"""
    write_config(config, port, tmp_path / "var" / "publisher.db", source)
    daemon = start(config, port)
    daemon.wait_log("schedule pull: ingest started")
    deadline = time.monotonic() + 10
    while "/news" not in upstream.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.requests == ["/news"]
    time.sleep(1)  # the fetch is stuck in the dripping body

    code, seconds = daemon.stop()

    assert code == 0
    assert seconds < 5, f"exit took {seconds:.1f} s"
    assert daemon.log.rstrip().endswith("stopped")


# -- several daemons on one PostgreSQL, one scheduler (issue 12) --------------------------------

HANDOVER = """
[scheduler]
takeover = "6s"

[schedules.tick]
every = "2s"
job = "build"
"""


def _pg_daemons(tmp_path: Path, pg_url: str, start: Callable[..., Daemon]) -> tuple[Daemon, Daemon]:
    """Two `publisher run` processes, as on two hosts: own folder, own port, one PostgreSQL schema."""
    daemons = []
    for name in ("first", "second"):
        folder = tmp_path / name
        (folder / "content").mkdir(parents=True)
        port = free_port()
        text = CONFIG.format(port=port, db="unused", schedules=HANDOVER).replace(
            'url = "sqlite:///unused"', f'url = "{pg_url}"'
        )
        text += '\n[[sources]]\nname = "sample"\ntype = "directory"\npath = "content"\n'
        (folder / "config.toml").write_text(text, encoding="utf-8")
        daemons.append(start(folder / "config.toml", port, name))
        if name == "first":
            daemons[0].wait_log("scheduling 1 schedule(s)")
    first, second = daemons
    second.wait_log("holds the scheduler lock")
    return first, second


def _runs_per_fire_time(pg_url: str) -> dict[datetime, list[str]]:
    store = Store(pg_url)
    try:
        found: dict[datetime, list[str]] = {}
        for run in store.runs.recent(1000, schedule="tick"):
            assert run.fire_time is not None
            found.setdefault(run.fire_time, []).append(run.outcome)
        return found
    finally:
        store.close()


def _wait_count(daemon: Daemon, text: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while daemon.log.count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count} times:\n{daemon.log}"
        time.sleep(0.05)


def test_kill_9_of_the_scheduler_hands_over_within_takeover_and_fires_once(
    tmp_path: Path, pg_url: str, start: Callable[..., Daemon]
) -> None:
    first, second = _pg_daemons(tmp_path, pg_url, start)
    _wait_count(first, "schedule tick: build finished", 1, 10)
    assert "scheduling 1 schedule(s)" not in second.log
    second.wait_http()

    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    took_over = second.wait_log("scheduling 1 schedule(s)", timeout=10)
    assert took_over < 6  # [scheduler] takeover
    _wait_count(second, "schedule tick: build finished", 2, 10)
    assert second.stop()[0] == 0

    runs = _runs_per_fire_time(pg_url)
    assert {fire: outcomes for fire, outcomes in runs.items() if len(outcomes) > 1} == {}
    served_after = sorted(f for f, o in runs.items() if o == ["ok"])
    assert len(served_after) >= 3


def test_a_scheduler_whose_lock_session_is_terminated_stops_and_the_other_takes_over(
    tmp_path: Path, pg_url: str, start: Callable[..., Daemon]
) -> None:
    from sqlalchemy import create_engine, text

    first, second = _pg_daemons(tmp_path, pg_url, start)
    _wait_count(first, "schedule tick: build finished", 1, 10)
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        [(pid, name)] = conn.execute(
            text(
                "SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
                " AND a.application_name LIKE 'publisher scheduler %'"
            )
        ).all()
        assert name.endswith(f":{first.proc.pid}")
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    engine.dispose()

    assert first.wait_log("lost the scheduler lock", timeout=5) < 3  # checks every takeover/6 = 1 s
    lost_at = len(first.log)
    took_over = second.wait_log("scheduling 1 schedule(s)", timeout=10)
    assert took_over < 6
    _wait_count(second, "schedule tick: build finished", 3, 10)
    first.wait_log("another publisher run holds the scheduler lock")  # back to waiting, after a pause
    assert "build started" not in first.log[lost_at:]  # no run of its own after the loss
    assert first.get().status_code == 200  # it still serves the web
    codes = first.stop()[0], second.stop()[0]
    assert codes == (0, 0)

    runs = _runs_per_fire_time(pg_url)
    assert {fire: outcomes for fire, outcomes in runs.items() if len(outcomes) > 1} == {}
    assert sum(1 for o in runs.values() if o == ["ok"]) >= 4


def test_a_frozen_scheduler_is_ended_by_the_waiting_daemon_within_takeover(
    tmp_path: Path, pg_url: str, start: Callable[..., Daemon]
) -> None:
    """SIGSTOP: the holder's connection stays open but says nothing, like a host that vanished."""
    first, second = _pg_daemons(tmp_path, pg_url, start)
    _wait_count(first, "schedule tick: build finished", 1, 10)
    os.kill(first.proc.pid, signal.SIGSTOP)
    try:
        took_over = second.wait_log("scheduling 1 schedule(s)", timeout=15)
    finally:
        os.kill(first.proc.pid, signal.SIGCONT)
    # Silent for two thirds of takeover (4 s, counted from its last check, up to 1 s before
    # the stop), then found at the next retry (every 2 s): within takeover.
    assert 2.5 < took_over < 7
    assert "has been silent for" in second.log and "ending its session to take over" in second.log
    first.wait_log("lost the scheduler lock", timeout=5)
    _wait_count(second, "schedule tick: build finished", 2, 10)
    assert (first.stop()[0], second.stop()[0]) == (0, 0)

    runs = _runs_per_fire_time(pg_url)
    assert {fire: outcomes for fire, outcomes in runs.items() if len(outcomes) > 1} == {}


def _slow_feed(seconds: float) -> Any:
    def route(handler: Any) -> None:
        time.sleep(seconds)
        handler.head(200, "application/rss+xml")
        handler.send(
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://example.org/</link>'
            b"<description>d</description><item><title>One</title><link>https://example.org/1</link>"
            b"<guid>https://example.org/1</guid><pubDate>Mon, 04 May 2026 07:00:00 GMT</pubDate></item>"
            b"</channel></rss>"
        )

    return route


def test_a_run_in_progress_when_the_lock_is_lost_finishes_and_is_not_served_again(
    tmp_path: Path, pg_url: str, start: Callable[..., Daemon], upstream: Upstream
) -> None:
    """The old scheduler is still fetching fire time F when the new one catches up F: F runs once."""
    from sqlalchemy import create_engine, text

    upstream.routes["/slow"] = _slow_feed(4)
    schedules = f"""
[scheduler]
takeover = "6s"

[[sources]]
name = "slow"
type = "feed"
url = "{upstream.url("/slow")}"

[schedules.pull]
every = "5s"
job = "ingest"
"""
    daemons = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        port = free_port()
        text_ = CONFIG.format(port=port, db="unused", schedules=schedules)
        text_ = text_.replace('"sqlite:///unused"', f'"{pg_url}"')
        (folder / "config.toml").write_text(text_, encoding="utf-8")
        daemons.append(start(folder / "config.toml", port, name))
        daemons[-1].wait_log("scheduling 1 schedule(s)" if name == "first" else "holds the scheduler lock")
    first, second = daemons
    first.wait_log("schedule pull: ingest started", timeout=10)

    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
            {"name": f"publisher scheduler {__import__('socket').gethostname()}:{first.proc.pid}"},
        )
    engine.dispose()
    first.wait_log("lost the scheduler lock", timeout=5)
    second.wait_log("scheduling 1 schedule(s)", timeout=5)
    first.wait_log("schedule pull: ingest finished", timeout=10)  # the run in progress went on
    assert first.log.index("lost the scheduler lock") < first.log.index("schedule pull: ingest finished")
    # The new scheduler caught up the same fire time and left it to the run in progress.
    fire = first.log.split("schedule pull: ingest started (fire time ")[1].split(")")[0]
    second.wait_log(f"schedule pull: fire time {fire} is being served by ")
    assert f":{first.proc.pid} (claim on fire time" in second.log
    _wait_count(second, "schedule pull: ingest finished", 1, 15)
    assert (first.stop()[0], second.stop()[0]) == (0, 0)

    store = Store(pg_url)
    per_fire: dict[datetime | None, int] = {}
    for run in store.runs.recent(100, schedule="pull"):
        per_fire[run.fire_time] = per_fire.get(run.fire_time, 0) + 1
    store.close()
    assert set(per_fire.values()) == {1} and len(per_fire) >= 2


def _lists(public: bool) -> str:
    return (
        '[[lists]]\nslug = "weekly"\nname = "Weekly digest"\nsender = "News <news@example.org>"\n'
        f"public = {'true' if public else 'false'}\n"
    )


def test_a_list_made_private_leaves_the_web_at_reload_and_at_restart_without_a_build(
    tmp_path: Path, start: Callable[..., Daemon]
) -> None:
    """What `public/` shows follows the configuration: a SIGHUP (or a restart) whose
    configuration changed what is published rebuilds it; one that changed nothing else
    does not (no second rebuild in the log)."""
    port = free_port()
    config = tmp_path / "config.toml"
    db = tmp_path / "var" / "publisher.db"
    write_config(config, port, db, HOURLY + _lists(public=True))
    daemon = start(config, port)
    daemon.wait_log("scheduling 1 schedule(s)")
    daemon.wait_log(
        "the configuration or templates of what is published changed: rebuilt"
    )  # never built before
    assert daemon.get("/archive/weekly/").status_code == 200
    assert "Weekly digest" in daemon.get("/archive/").text
    assert 'name="list" value="weekly"' in daemon.get("/index.html").text  # the sign-up box

    write_config(config, port, db, HOURLY + _lists(public=False))
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("configuration reloaded: 1 schedule(s): hourly")
    assert daemon.log.count("rebuilt") == 2
    assert daemon.get("/archive/weekly/").status_code == 404
    assert daemon.get("/archive/weekly/feed.atom.xml").status_code == 404
    assert "Weekly digest" not in daemon.get("/archive/").text
    assert "Weekly digest" not in daemon.get("/index.html").text

    write_config(config, port, db, HOURLY + WEEKLY + _lists(public=False))  # a schedule only
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("configuration reloaded: 2 schedule(s): hourly, weekly")
    assert daemon.log.count("rebuilt") == 2  # nothing published changed: no rebuild
    assert daemon.stop()[0] == 0

    write_config(config, port, db, HOURLY + _lists(public=True))  # changed while stopped
    again = start(config, port, "again")
    again.wait_log("the configuration or templates of what is published changed: rebuilt")
    again.wait_http()
    assert again.get("/archive/weekly/").status_code == 200
    assert again.stop()[0] == 0


def test_an_ingest_with_nothing_new_still_rebuilds_a_changed_configuration(
    make_settings: Callable[..., Settings], store_url: str
) -> None:
    """`publisher schedules run` of an ingest job after `config.toml` changed, with no new
    item: the build runs anyway, so a list made private leaves the archive."""
    lists = [{"slug": "weekly", "name": "Weekly digest", "sender": "News <news@example.org>"}]
    settings = make_settings(storage={"url": store_url}, lists=lists)
    publisher = Publisher(settings, Store(store_url))
    publisher.build()
    archive = settings.feeds.output_dir / "archive" / "weekly" / "index.html"
    assert archive.is_file() and not publisher.needs_build()
    counts = asyncio.run(publisher.arun_job(JobKind.INGEST))
    assert "written" not in counts  # nothing new, nothing changed: no build
    private = publisher.reconfigured(
        settings.model_copy(update={"lists": [settings.lists[0].model_copy(update={"public": False})]})
    )
    assert private.needs_build()
    counts = asyncio.run(private.arun_job(JobKind.INGEST))
    assert "written" in counts and not archive.exists()
    assert not private.needs_build()
    publisher.close()


def _index_override(folder: Path, edition: int) -> Path:
    """An override of the home page that only changes its <title>, as an admin would."""
    page = folder / "web" / "index.html.j2"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(
        '{% extends "default:web/index.html.j2" %}\n'
        f"{{% block title %}}Social protection news, edition {edition}{{% endblock %}}\n",
        encoding="utf-8",
    )
    return page


def test_a_page_template_edited_without_a_config_change_is_rebuilt_at_reload(
    tmp_path: Path, start: Callable[..., Daemon]
) -> None:
    """Only the override of index.html.j2 changes, config.toml stays as it is: the SIGHUP
    rebuilds, and the page a visitor gets has the new title. A reload with nothing edited
    rebuilds nothing."""
    port = free_port()
    config = tmp_path / "config.toml"
    db = tmp_path / "var" / "publisher.db"
    _index_override(tmp_path / "site-templates", 1)
    write_config(config, port, db, HOURLY + '[templates]\npath = "site-templates"\n')
    daemon = start(config, port)
    daemon.wait_log("scheduling 1 schedule(s)")
    daemon.wait_log("of what is published changed: rebuilt")  # never built before
    daemon.wait_http()
    assert "<title>Social protection news, edition 1</title>" in daemon.get("/index.html").text

    _index_override(tmp_path / "site-templates", 2)  # same size: the content counts, not the size
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("configuration reloaded: 1 schedule(s): hourly")
    assert daemon.log.count("of what is published changed: rebuilt") == 2
    assert "<title>Social protection news, edition 2</title>" in daemon.get("/index.html").text

    daemon.proc.send_signal(signal.SIGHUP)
    _wait_count(daemon, "configuration reloaded: 1 schedule(s): hourly", 2, 15)
    assert daemon.log.count("rebuilt") == 2  # nothing edited: no rebuild
    assert daemon.stop()[0] == 0


def test_an_ingest_with_nothing_new_rebuilds_after_a_page_template_edit(
    tmp_path: Path, make_settings: Callable[..., Settings], store_url: str
) -> None:
    """The `ingest` job builds when a template a build renders changed, even with no new
    item; a template that only shapes mail (a digest's text, the confirmation mail, a
    private list's HTML) does not make it build. A public list's digest HTML does: it is
    the list's archive pages."""
    folder = tmp_path / "site-templates"
    page = _index_override(folder, 1)
    sender = "News <news@example.org>"
    lists = [
        {"slug": "weekly", "name": "Weekly digest", "sender": sender},
        {
            "slug": "staff",
            "name": "Staff",
            "sender": sender,
            "public": False,
            "html_template": "staff.html.j2",
        },
    ]
    settings = make_settings(storage={"url": store_url}, templates={"path": str(folder)}, lists=lists)
    publisher = Publisher(settings, Store(store_url))
    publisher.build()
    index = settings.feeds.output_dir / "index.html"
    assert "<title>Social protection news, edition 1</title>" in index.read_text(encoding="utf-8")
    assert not publisher.needs_build()

    (folder / "email").mkdir()
    for mail_only in ("email/digest.txt.j2", "email/confirm.html.j2", "staff.html.j2"):
        (folder / mail_only).write_text("{# only ever mailed #}\n")
    assert not publisher.needs_build()
    assert "written" not in asyncio.run(publisher.arun_job(JobKind.INGEST))

    _index_override(folder, 2)
    assert publisher.needs_build()
    counts = asyncio.run(publisher.arun_job(JobKind.INGEST))
    assert counts["new"] == 0 and "written" in counts
    assert "<title>Social protection news, edition 2</title>" in index.read_text(encoding="utf-8")
    assert not publisher.needs_build()

    # The layout the public list's digest extends, overridden: its archive pages change.
    (folder / "email" / "layout.html.j2").write_text(
        (REPO / "templates" / "email" / "layout.html.j2").read_text(encoding="utf-8") + "\n"
    )
    assert publisher.needs_build()
    publisher.build()
    # Removing an override falls back to the built-in: another file, so another build.
    page.unlink()
    assert publisher.needs_build()
    publisher.build()
    assert "<title>Social Protection Department</title>" in index.read_text(encoding="utf-8")
    publisher.close()
