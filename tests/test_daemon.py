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
from publisher.store import Store
from tests.http_server import Upstream, drip
from tests.slow_clients import seconds_until_closed
from tests.smtp_server import free_port

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
    write_config(tmp_path / "a" / "config.toml", first_port, db, HOURLY)
    write_config(tmp_path / "b" / "config.toml", second_port, db, HOURLY)

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
