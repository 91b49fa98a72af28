"""How long `publisher build` takes as the store grows, on SQLite.

For each size N, a fresh SQLite store in a temporary folder gets N synthetic items
spread over the six categories of the test configuration, then three builds are timed:
a full build into an empty output folder (every archive page rendered; once by
default, ``--full-repeat``), five times each a rebuild with nothing new
(must write nothing), and a rebuild after saving one new item (must rewrite only the
all-items feeds, that category's feeds, index.html and the newest RFC 5005 archive pages
of both, and the HTML pages of those RSS and Atom files). The one-new-item rebuild is
the one the scheduler runs every few minutes; its target is under 0.5 s at 100k items,
with every full archive page left untouched (same mtime and bytes) except the newest
full page when it gains its ``next-archive`` link.
The archive uses the default 100 items a page, so 100k items make about 1,000 pages of
the all-items feed and 170 per category, in three formats.

Run: .venv/bin/python bench/feeds.py [--sizes 1000,10000,100000] [--repeat 5] [--full-repeat 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from publisher.config import Settings, settings_from_dict
from publisher.feeds import build_feeds
from publisher.models import Item
from publisher.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import BASE_CONFIG

START = datetime(2020, 1, 1, tzinfo=UTC)
CATEGORIES = [c["slug"] for c in BASE_CONFIG["categories"]]
# {n}: every item's summary differs, as in real life (feeds remember parsed summaries).
SUMMARY = "<p>The department published <b>new figures ({n})</b> on pensions &amp; benefits.</p>" * 2
CONTENT = "<p>" + "Long body text about social protection policy. " * 30 + "</p>"


def make_item(n: int) -> Item:
    published = START + timedelta(minutes=n)
    return Item(
        id=f"bench-{n:07d}",
        source="sample",  # the source BASE_CONFIG configures: only those are shown
        title=f"Item {n}: new figures on social protection",
        link=f"https://www.example.org/news/{n}",
        published=published,
        updated=published + timedelta(seconds=30),
        language="en",
        summary=SUMMARY.format(n=n),
        content=CONTENT if n % 2 else "",
        category=CATEGORIES[n % len(CATEGORIES)],
        label=None,
        content_hash=f"{n:064d}",
    )


def fill(store: Store, count: int, chunk: int = 5000) -> None:
    for start in range(0, count, chunk):
        batch = [make_item(n) for n in range(start, min(count, start + chunk))]
        store.items.save(batch, [], START)


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = action()
    return time.perf_counter() - t0, result


def bench_size(count: int, repeat: int, full_repeat: int, workdir: Path) -> dict[str, float]:
    folder = workdir / f"n{count}"
    folder.mkdir()
    data: dict[str, Any] = {**BASE_CONFIG, "feeds": {"output_dir": str(folder / "public")}}
    settings: Settings = settings_from_dict(data, folder / "config.toml")
    store = Store(f"sqlite:///{folder / 'publisher.db'}")
    try:
        fill_s, _ = timed(lambda: fill(store, count))
        full, noop, one = [], [], []
        next_n = count
        for _ in range(full_repeat):
            shutil.rmtree(settings.feeds.output_dir, ignore_errors=True)
            seconds, _ = timed(lambda: build_feeds(settings, store))
            full.append(seconds)
        for _ in range(repeat):
            seconds, report = timed(lambda: build_feeds(settings, store))
            assert not report.written, f"no-op rebuild wrote {report.written}"
            noop.append(seconds)
        archive = settings.feeds.output_dir / "feeds" / "archive"
        for _ in range(repeat):
            before = _archive_files(archive)
            store.items.save([make_item(next_n)], [], START)
            category = CATEGORIES[next_n % len(CATEGORIES)]
            next_n += 1
            seconds, report = timed(lambda: build_feeds(settings, store))
            one.append(seconds)
            _check_one_new_item(archive, before, report.written, category, settings.feeds.output_dir)
    finally:
        store.close()
    return {
        "fill": fill_s,
        "full": statistics.median(full),
        "noop": statistics.median(noop),
        "one": statistics.median(one),
    }


def _archive_files(archive: Path) -> dict[Path, tuple[int, int]]:
    """(mtime_ns, size) of every archive page file."""
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in archive.rglob("*") if p.is_file()}


def _check_one_new_item(
    archive: Path, before: dict[Path, tuple[int, int]], written: list[Path], category: str, out: Path
) -> None:
    """One new item may touch only the newest archive page of the all-items feed and of
    its category (and the page before, when the new item's arrival started a page);
    every other archive page keeps its mtime and size. A feed's HTML page
    (.feed-pages/, publisher.feed_pages) is rewritten only with its feed."""
    pages = out / ".feed-pages"
    rewritten_pages = {p for p in written if pages in p.parents}
    feeds_of_pages = {out / p.relative_to(pages).as_posix().removesuffix(".html") for p in rewritten_pages}
    written = [p for p in written if pages not in p.parents]
    assert feeds_of_pages <= set(written), f"pages rewritten without their feed: {sorted(feeds_of_pages)[:5]}"
    after = _archive_files(archive)
    allowed: set[Path] = set()
    for feed in ("all", category):
        numbers = sorted(int(p.name.split(".")[0]) for p in (archive / feed).iterdir())
        newest = numbers[-1]
        started = not any(p.parent.name == feed and p.name.startswith(f"{newest}.") for p in before)
        allowed |= {
            p
            for p in after
            if p.parent.name == feed
            and p.name.split(".")[0] in {str(newest), str(newest - 1) if started else ""}
        }
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed <= allowed, f"full archive pages changed: {sorted(changed - allowed)[:5]}"
    touched = {p for p in written if archive in p.parents}
    assert touched <= allowed, f"archive pages rewritten: {sorted(touched - allowed)[:5]}"
    others = {p.name for p in written if archive not in p.parents}
    assert len(others) == 7, f"one new item rewrote {sorted(others)} outside the archive"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated item counts")
    parser.add_argument("--repeat", type=int, default=5, help="timed rebuilds per measurement (median shown)")
    parser.add_argument(
        "--full-repeat",
        type=int,
        default=1,
        help="timed full builds (every archive page rendered: slow at 100k)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    table = Table(
        title=f"publisher build on SQLite, seconds (rebuilds: median of {args.repeat}; "
        f"full build: of {args.full_repeat})"
    )
    for column in (
        "items",
        "insert",
        "full build",
        "no-op rebuild",
        "one-new-item rebuild",
        "one-new / full",
    ):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory(prefix="bench-feeds-") as tmp:
        for count in sizes:
            r = bench_size(count, args.repeat, args.full_repeat, Path(tmp))
            table.add_row(
                f"{count:,}",
                f"{r['fill']:.2f}",
                f"{r['full']:.3f}",
                f"{r['noop']:.3f}",
                f"{r['one']:.3f}",
                f"{r['one'] / r['full']:.2f}",
            )
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
