"""WebSub publishing: after a build, tell each hub which feeds changed (W3C WebSub, 2018).

A hub fetches a feed when its publisher pings it (``POST`` form-encoded
``hub.mode=publish`` and ``hub.url=<the feed's public URL>``) and pushes the new entries
to subscribers, so readers learn of an item in seconds instead of at their next poll.

Pings must neither slow a build nor hold up the next job, and a hub that is down must
not lose a ping. So :class:`HubPinger` owns one daemon thread with a queue ordered by
due time: :meth:`HubPinger.submit` returns at once; a failed ping (connection error,
timeout, any non-2xx answer) is tried again after each delay of ``backoff`` and then
given up and counted as failed. A ping already waiting for the same hub and feed is not
queued twice (the hub fetches the latest bytes anyway). Outcomes are tallied and
handed out once by :meth:`HubPinger.take_tally`, which the daemon's next job reports in
its counts. A one-shot command (``publisher build``, ``publish``) calls
:meth:`HubPinger.wait` for a bounded time before the process exits.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

#: Seconds before each retry of a failed ping; then it is given up.
DEFAULT_BACKOFF: tuple[float, ...] = (2.0, 10.0, 60.0, 300.0)
#: Seconds for one ping request, connect to last byte.
DEFAULT_TIMEOUT = 10.0

#: Sends one ping; returns None on success or a short reason for the failure.
Post = Callable[[str, str], str | None]


@dataclass(frozen=True, slots=True)
class PingTally:
    """Pings finished since the last tally: delivered, given up, and still waiting."""

    sent: int = 0
    failed: int = 0
    pending: int = 0


@dataclass(slots=True)
class _Ping:
    hub: str
    url: str
    attempts: int = 0


def http_post(timeout: float = DEFAULT_TIMEOUT) -> Post:
    """Pings over HTTP with httpx: form-encoded, no redirects followed, 2xx is success.

    The answer's body is never read: only its status matters, and a hub that sent an
    endless (or endlessly dripping) body would otherwise hold the one ping thread, and
    every ping queued behind it, for ever (httpx's timeout is per socket read).
    """

    def post(hub: str, url: str) -> str | None:
        form = {"hub.mode": "publish", "hub.url": url}
        try:
            with (
                httpx.Client(timeout=timeout, follow_redirects=False) as client,
                client.stream("POST", hub, data=form) as answer,
            ):
                status = answer.status_code
        except httpx.HTTPError as e:
            return f"{type(e).__name__}: {e}"
        if 200 <= status < 300:
            return None
        return f"HTTP {status}"

    return post


class HubPinger:
    """Publish pings in a background thread, retried with back-off."""

    def __init__(
        self,
        hubs: Sequence[str],
        *,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        post: Post | None = None,
    ) -> None:
        self.hubs = list(hubs)
        self.backoff = list(backoff)
        self._post = post or http_post()
        self._queue: list[tuple[float, int, _Ping]] = []
        self._waiting: set[tuple[str, str]] = set()
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._busy = 0  # pings being sent right now
        self._sent = 0
        self._failed = 0
        self._thread: threading.Thread | None = None

    def submit(self, urls: Sequence[str]) -> int:
        """Queue one ping per hub and changed feed URL; returns how many were queued."""
        queued = 0
        with self._cond:
            now = time.monotonic()
            for hub in self.hubs:
                for url in urls:
                    if (hub, url) in self._waiting:
                        continue
                    self._waiting.add((hub, url))
                    heapq.heappush(self._queue, (now, next(self._order), _Ping(hub, url)))
                    queued += 1
            if queued and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, name="websub-pings", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return queued

    def take_tally(self) -> PingTally:
        """Pings delivered and given up since the last call, and those still waiting."""
        with self._cond:
            tally = PingTally(self._sent, self._failed, len(self._queue) + self._busy)
            self._sent = self._failed = 0
        return tally

    def wait(self, timeout: float) -> bool:
        """Block until every queued ping is delivered or given up, at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._queue:
                        self._thread = None
                        return
                    due, _, ping = self._queue[0]
                    left = due - time.monotonic()
                    if left <= 0:
                        heapq.heappop(self._queue)
                        # Not waiting any more: a build meanwhile queues a fresh ping.
                        self._waiting.discard((ping.hub, ping.url))
                        self._busy += 1
                        break
                    self._cond.wait(left)
            error = self._post(ping.hub, ping.url)
            ping.attempts += 1
            with self._cond:
                self._busy -= 1
                if error is None:
                    self._sent += 1
                elif ping.attempts <= len(self.backoff):
                    log.warning(
                        "websub: ping to %s for %s failed (%s); retrying in %ss",
                        ping.hub,
                        ping.url,
                        error,
                        self.backoff[ping.attempts - 1],
                    )
                    if (ping.hub, ping.url) not in self._waiting:
                        self._waiting.add((ping.hub, ping.url))
                        due = time.monotonic() + self.backoff[ping.attempts - 1]
                        heapq.heappush(self._queue, (due, next(self._order), ping))
                else:
                    log.error(
                        "websub: gave up pinging %s for %s after %d attempts: %s",
                        ping.hub,
                        ping.url,
                        ping.attempts,
                        error,
                    )
                    self._failed += 1
                self._cond.notify_all()
