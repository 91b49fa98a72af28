"""How long the web archive's build takes with N sent issues of one public list, on SQLite.

A fresh store in a temporary folder gets N weekly issues of the test configuration's
public list, each with 10 items and really sent to one subscriber (the Maildir
outbox), without rebuilding the archive after each send. Then two builds of the
archive alone (``archive.build_archive``) are timed, each ``--repeat`` times: a full
build into an empty output folder, and a rebuild with nothing new (must write nothing).
Every page exists once per catalogue language (en, fr, es), so the files column says
how many pages a build writes.

The baseline is the same full build rendered by Jinja2's plain ``SandboxedEnvironment``
instead of :class:`publisher.sandbox.BoundedSandbox` (same process, same store, same
bytes written, checked): the "bounds cost" column is what the template limits (size
checks, loop counting, the clock looked at on every call and loop step) add to a build.

Run: .venv/bin/python bench/archive.py [--sizes 25,100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from jinja2.sandbox import SandboxedEnvironment
from rich.console import Console
from rich.table import Table

import publisher.templating as templating
from publisher.app import Publisher
from publisher.archive import build_archive
from publisher.config import Settings, settings_from_dict
from publisher.models import Item
from publisher.store import Store
from publisher.subscriptions import add

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import BASE_CONFIG

START = datetime(2024, 1, 3, 9, 0, tzinfo=UTC)  # a Wednesday
SUMMARY = "<p>The department published <b>new figures</b> on pensions &amp; benefits.</p>" * 2
LIST = {
    "slug": "weekly",
    "name": "Weekly digest",
    "schedule": "weekly-digest",
    "sender": "Social Protection <news@example.org>",
    "subject": "This week: {{ t('new_items', count=items|length) }}",
}
SCHEDULES = {"weekly-digest": {"cron": "0 9 * * mon", "job": "digest", "timezone": "Europe/Zurich"}}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_item(n: int, published: datetime) -> Item:
    return Item(
        id=f"bench-{n:07d}",
        source="sample",  # the source BASE_CONFIG configures: only those are shown
        title=f"Item {n}: new figures on social protection",
        link=f"https://www.example.org/news/{n}",
        published=published,
        updated=published,
        language="en",
        summary=SUMMARY,
        category="press-releases",
        label=None,
        content_hash=f"{n:064d}",
    )


def make_settings(folder: Path) -> Settings:
    data: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in BASE_CONFIG.items()}
    data["storage"] = {"url": f"sqlite:///{folder / 'bench.db'}"}
    data["feeds"] = {"output_dir": str(folder / "public")}
    data["outbox"] = {"path": str(folder / "outbox")}
    data["lists"] = [LIST]
    data["schedules"] = SCHEDULES
    data["delivery"] = {"journal_dir": str(folder / "journal")}
    return settings_from_dict(data, folder / "config.toml")


def fill(settings: Settings, issues: int) -> Store:
    clock = Clock(START)
    pub = Publisher(settings, Store(settings.storage.url), clock=clock)
    add(settings, pub.store, "weekly", "reader@example.org", "Reader", "en", now=START)
    for week in range(issues):
        clock.now = START + timedelta(weeks=week)
        pub.store.items.save(
            [make_item(week * 10 + i, clock.now - timedelta(hours=i + 1)) for i in range(10)], [], clock.now
        )
        report = asyncio.run(pub.send_digest("weekly", rebuild_archive=False))
        assert report.sent == 1, report
    return pub.store


def timed(
    run: Callable[[], Any], repeat: int, before: Callable[[], None] = lambda: None
) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


class PlainSandbox(SandboxedEnvironment):
    """Jinja2's sandbox as it comes, with the one method the publisher adds filters through."""

    def add_filter(self, name: str, func: Callable[..., Any]) -> None:
        self.filters[name] = func


@contextmanager
def unbounded_sandbox() -> Iterator[None]:
    """Render with Jinja2's plain sandbox (the baseline), with fresh template caches each way."""

    def fresh() -> None:
        templating._ENVIRONMENTS.clear()
        templating._compiled.cache_clear()

    with mock.patch.object(templating, "BoundedSandbox", PlainSandbox):
        fresh()
        try:
            yield
        finally:
            fresh()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def measure(size: int, repeat: int) -> list[str]:
    """One table row: fill a store with ``size`` issues, time a full build and a rebuild."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = make_settings(Path(tmp))
        store = fill(settings, size)
        archive = settings.feeds.output_dir / "archive"
        full, report = timed(
            lambda: build_archive(settings, store), repeat, lambda: shutil.rmtree(archive, True)
        )
        files = len(report.written)
        bounded_bytes = snapshot(archive)
        again, report = timed(lambda: build_archive(settings, store), repeat)
        with unbounded_sandbox():
            plain, _ = timed(
                lambda: build_archive(settings, store), repeat, lambda: shutil.rmtree(archive, True)
            )
            if snapshot(archive) != bounded_bytes:
                raise SystemExit("the plain sandbox built different pages; the comparison would be wrong")
        store.close()
    per_issue = f"{full / size * 1000:.1f} ms"
    return [
        str(size),
        str(files),
        f"{full:.2f}",
        per_issue,
        f"{again:.2f}",
        str(len(report.written)),
        f"{plain:.2f}",
        f"{full / plain:.2f}x",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="25,100")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    table = Table(title="archive build (median seconds)")
    columns = (
        "issues",
        "files",
        "full build",
        "per issue",
        "rebuild, nothing new",
        "rewritten",
        "full, plain sandbox",
        "bounds cost",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for size in (int(s) for s in args.sizes.split(",")):
        table.add_row(*measure(size, args.repeat))
    Console(markup=False, emoji=False, width=140).print(table)


if __name__ == "__main__":
    main()
