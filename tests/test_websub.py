"""WebSub: hub links in every feed, and publish pings to a real HTTP server acting as a hub.

The hub is tests/http_server.py's ``Upstream`` on loopback: it records every POST (path,
Content-Type, body) and answers as scripted, failing the first requests when asked.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import feedparser
import lxml.etree
import pytest

from publisher.app import Publisher
from publisher.config import Settings
from publisher.feeds import build_feeds
from publisher.models import Item, JobKind
from publisher.store import Store
from publisher.websub import HubPinger, PingTally
from tests.http_server import Upstream, _Handler, drip, failing_first

BASE = "http://127.0.0.1:8080"
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
REPO = Path(__file__).parent.parent
ATOM = "{http://www.w3.org/2005/Atom}"
FEED_FILES = 7 * 3  # all-items and six categories, in three formats


def make_item(n: int, category: str = "news") -> Item:
    published = T0 + timedelta(hours=n)
    return Item(
        id=f"sample:item-{n}",
        source="sample",
        title=f"Item number {n}",
        link=f"https://www.example.org/news/{n}",
        published=published,
        updated=published,
        language="en",
        summary=f"<p>Item {n}.</p>",
        category=category,
        content_hash=f"hash-{n}",
    )


def pings(hub: Upstream, path: str) -> list[str]:
    """The hub.url of every publish ping received at ``path``, checking each is well formed."""
    urls = []
    for got_path, content_type, body in hub.posts:
        if got_path != path:
            continue
        assert content_type == "application/x-www-form-urlencoded"
        form = parse_qs(body.decode(), strict_parsing=True)
        assert form["hub.mode"] == ["publish"]
        urls += form["hub.url"]
    return urls


def wait_for(what: str, check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_every_feed_links_its_hubs_and_itself(make_settings: Callable[..., Settings], store: Store) -> None:
    hubs = ["https://hub.example.org/", "https://websub.example.net/hub"]
    settings = make_settings(feeds={"websub_hubs": hubs})
    store.items.save([make_item(1)], [], T0)

    build_feeds(settings, store)

    out = settings.feeds.output_dir
    for name, fmt in (("news", "atom.xml"), ("news", "rss.xml"), ("all", "atom.xml"), ("all", "rss.xml")):
        url = f"{BASE}/feeds/{name}.{fmt}"
        root = lxml.etree.parse(str(out / f"feeds/{name}.{fmt}")).getroot()
        found = [(link.get("rel"), link.get("href")) for link in root.iter(f"{ATOM}link")]
        assert [h for rel, h in found if rel == "hub"] == hubs, url
        assert [h for rel, h in found if rel == "self"] == [url], url
        parsed = feedparser.parse((out / f"feeds/{name}.{fmt}").read_bytes())
        assert not parsed.bozo
        if fmt == "rss.xml":  # RSS keeps its own <link> to the site, not the last atom:link
            assert parsed.feed.link == f"{BASE}/"
    feed = json.loads((out / "feeds/news.json").read_bytes())
    assert feed["hubs"] == [{"type": "WebSub", "url": h} for h in hubs]
    assert feed["feed_url"] == f"{BASE}/feeds/news.json"


def test_a_build_pings_each_hub_once_per_changed_feed(
    make_settings: Callable[..., Settings], store: Store, upstream: Upstream
) -> None:
    upstream.routes["/a"] = failing_first(0)
    upstream.routes["/b"] = failing_first(0)
    settings = make_settings(feeds={"websub_hubs": [upstream.url("/a"), upstream.url("/b")]})
    publisher = Publisher(settings, store)
    store.items.save([make_item(1)], [], T0)

    report = publisher.build()

    assert report.hub_pings == 2 * FEED_FILES
    assert publisher.finish_hub_pings(10).sent == 2 * FEED_FILES
    every = {
        f"{BASE}/feeds/{n}.{s}"
        for n in ["all", *(c.slug for c in settings.categories)]
        for s in ("rss.xml", "atom.xml", "json")
    }
    assert sorted(pings(upstream, "/a")) == sorted(every)
    assert sorted(pings(upstream, "/b")) == sorted(every)

    upstream.posts.clear()
    store.items.save([make_item(2, "events")], [], T0)
    publisher.build()
    publisher.finish_hub_pings(10)
    changed = {f"{BASE}/feeds/{n}.{s}" for n in ("all", "events") for s in ("rss.xml", "atom.xml", "json")}
    assert sorted(pings(upstream, "/a")) == sorted(changed)  # only the feeds that changed

    upstream.posts.clear()
    assert publisher.build().hub_pings == 0  # nothing changed: no ping
    assert upstream.posts == []


def test_a_failing_hub_is_retried_with_backoff_and_the_outcome_counted(
    make_settings: Callable[..., Settings], store: Store, upstream: Upstream
) -> None:
    upstream.routes["/flaky"] = failing_first(2, status=503)
    upstream.routes["/down"] = failing_first(10**6, status=500)
    settings = make_settings(
        feeds={"websub_hubs": [upstream.url("/flaky"), upstream.url("/down")], "formats": ["atom"]}
    )
    publisher = Publisher(settings, store)
    publisher.hub_pinger = HubPinger(settings.feeds.websub_hubs, backoff=[0.2, 0.4])
    store.items.save([make_item(1)], [], T0)

    counts = asyncio.run(publisher.arun_job(JobKind.BUILD))

    assert counts["hub_pings"] == 2 * 7
    assert publisher.hub_pinger.wait(10)
    # 7 feeds: two refused, retried, then all accepted; the other hub refused all 3 times
    assert len(pings(upstream, "/flaky")) == 7 + 2
    assert len(pings(upstream, "/down")) == 7 * 3
    store.items.save([make_item(2)], [], T0)
    counts = asyncio.run(publisher.arun_job(JobKind.BUILD))
    # the next job reports how the earlier pings ended
    assert (counts["hub_pings_sent"], counts["hub_pings_failed"]) == (7, 7)
    assert counts["hub_pings"] == 2 * 2  # all-items and news changed


def test_pings_do_not_delay_the_build(
    make_settings: Callable[..., Settings], store: Store, upstream: Upstream
) -> None:
    def slow_hub(h: _Handler) -> None:
        time.sleep(1.5)
        h.head(204, "text/plain", {"Content-Length": "0"})

    upstream.routes["/slow"] = slow_hub
    settings = make_settings(feeds={"websub_hubs": [upstream.url("/slow")], "formats": ["atom"]})
    publisher = Publisher(settings, store)
    store.items.save([make_item(1)], [], T0)

    started = time.monotonic()
    report = publisher.build()
    took = time.monotonic() - started

    assert report.hub_pings == 7
    assert took < 1.0, f"build waited {took:.1f}s for the hub"
    assert publisher.hub_ping_tally().pending == 7
    wait_for("the slow hub's pings", lambda: len(upstream.posts) == 7, timeout=20)


def test_a_hub_answering_with_an_endless_body_holds_up_no_ping(upstream: Upstream) -> None:
    # 200 then a body dripping a byte every 0.1 s, for ever: never a read timeout.
    upstream.routes["/endless"] = drip(0.1)
    upstream.routes["/ok"] = failing_first(0)
    pinger = HubPinger([upstream.url("/endless"), upstream.url("/ok")], backoff=[])

    pinger.submit([f"{BASE}/feeds/all.atom.xml", f"{BASE}/feeds/news.atom.xml"])

    assert pinger.wait(5), "a ping is stuck reading a hub's answer"
    assert pinger.take_tally() == PingTally(sent=4, failed=0, pending=0)
    assert len(pings(upstream, "/ok")) == 2


@pytest.mark.slow
def test_publisher_build_waits_for_its_pings_and_says_how_they_went(
    tmp_path: Path, upstream: Upstream
) -> None:
    upstream.routes["/hub"] = failing_first(1, status=502)
    for name in ("content", "subscribers"):
        shutil.copytree(REPO / name, tmp_path / name)
    config = (REPO / "config.toml").read_text()
    config = config.replace("[feeds]\n", f'[feeds]\nwebsub_hubs = ["{upstream.url("/hub")}"]\n', 1)
    (tmp_path / "config.toml").write_text(config)
    env: dict[str, Any] = {**os.environ, "PYTHONPATH": str(REPO)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "publisher.cli", *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    assert cli("ingest").returncode == 0
    built = cli("build")

    assert built.returncode == 0, built.stderr
    feeds = len(pings(upstream, "/hub")) - 1  # one refused, then retried after 2 s
    assert feeds >= 3
    assert f"websub: {feeds} ping(s) sent, 0 failed" in built.stdout
