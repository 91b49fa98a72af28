"""The issue and delivery ledger in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from publisher.config import Settings
from publisher.models import DeliveryStatus
from publisher.store import Store
from publisher.store.issues import Outcome
from publisher.store.tables import deliveries, delivery_attempts
from publisher.subscriptions import add

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
LISTS = [{"slug": "weekly", "name": "Weekly", "sender": "News <news@example.org>"}]


def make_issue(store: Store, settings: Settings, subscribers: int, key: str = "2026-11-23T08:00:00Z") -> int:
    for i in range(subscribers):
        add(settings, store, "weekly", f"r{i}@example.org", f"R {i}", "en", now=NOW)
    created = store.issues.create(
        list_slug="weekly",
        period_key=key,
        period_start=NOW,
        schedule=None,
        subject="s",
        item_ids=[],
        now=NOW,
    )
    assert created is not None
    return created[0]


def test_issue_is_unique_per_list_and_period(store: Store, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(lists=LISTS)
    make_issue(store, settings, 3)
    again = store.issues.create(
        list_slug="weekly",
        period_key="2026-11-23T08:00:00Z",
        period_start=NOW,
        schedule=None,
        subject="s",
        item_ids=[],
        now=NOW,
    )
    assert again is None
    (row,) = store.issues.summaries("weekly")
    assert row.total == 3 and row.pending == 3


def test_concurrent_workers_never_claim_the_same_delivery(
    store: Store, store_url: str, make_settings: Callable[..., Settings]
) -> None:
    """Two senders on one store (two `publisher worker` processes) split the queue."""
    settings = make_settings(lists=LISTS)
    make_issue(store, settings, 300)
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    stores = {w: Store(store_url) for w in claimed}  # one engine each, like two processes
    barrier = threading.Barrier(2, timeout=30)

    def work(worker: str) -> None:
        barrier.wait()
        while batch := stores[worker].issues.claim(worker, 7, NOW):
            claimed[worker].extend(c.delivery_id for c in batch)

    threads = [threading.Thread(target=work, args=(w,)) for w in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores.values():
        s.close()
    a, b = set(claimed["a"]), set(claimed["b"])
    assert not a & b, "a delivery was claimed by both workers"
    assert len(a | b) == 300 and len(claimed["a"]) + len(claimed["b"]) == 300


def test_deferred_rows_are_due_only_after_their_retry_time(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(lists=LISTS)
    make_issue(store, settings, 1)
    (c,) = store.issues.claim("w", 10, NOW)
    retry = NOW + timedelta(minutes=5)
    store.issues.record(
        [Outcome(c.delivery_id, DeliveryStatus.DEFERRED, 451, "later", NOW, 1, retry)], worker="w"
    )
    assert store.issues.claim("w", 10, NOW + timedelta(minutes=4)) == []
    (again,) = store.issues.claim("w", 10, retry)
    assert again.delivery_id == c.delivery_id and again.attempts == 1


def test_release_returns_claims_to_the_queue(store: Store, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(lists=LISTS)
    make_issue(store, settings, 4)
    batch = store.issues.claim("w", 10, NOW)
    assert len(batch) == 4 and store.issues.claim("other", 10, NOW) == []
    store.issues.release([c.delivery_id for c in batch], NOW, worker="w")
    assert len(store.issues.claim("other", 10, NOW)) == 4


def test_a_batch_of_outcomes_is_written_alike_on_both_stores(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    """Each row the worker still holds takes its outcome and one attempt, in batch order.

    PostgreSQL writes the batch in one statement, SQLite row by row: the same batch must
    leave the same rows. A row another worker holds, or one already settled, takes nothing;
    a repeated id takes its first outcome; a missing Message-ID keeps the stored one.
    """
    settings = make_settings(lists=LISTS)
    make_issue(store, settings, 5)
    mine = [c.delivery_id for c in store.issues.claim("w", 4, NOW)]
    (theirs,) = [c.delivery_id for c in store.issues.claim("other", 1, NOW)]
    retry = NOW + timedelta(minutes=10)
    later = NOW + timedelta(seconds=3)
    assert store.issues.record(
        [Outcome(mine[3], DeliveryStatus.SENT, 250, "ok", NOW, 1, None, "<a@x>")], worker="w"
    )
    batch = [
        Outcome(mine[2], DeliveryStatus.DEFERRED, 451, "greylisted", later, 1, retry),
        Outcome(mine[0], DeliveryStatus.SENT, 250, "2.0.0 queued", later, 1, None, "<m0@example.org>"),
        Outcome(theirs, DeliveryStatus.SENT, 250, "not mine", later, 1),
        Outcome(mine[1], DeliveryStatus.FAILED, None, "x" * 1200, later, 3),
        Outcome(mine[0], DeliveryStatus.FAILED, 550, "second outcome of one row", later, 2),
        Outcome(mine[3], DeliveryStatus.FAILED, 550, "already settled", later, 2),
    ]
    assert store.issues.record(batch, worker="w") == 3

    with store.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(deliveries).where(deliveries.c.id.in_([*mine, theirs])))}
        attempts = [
            (r.delivery_id, r.status, r.code, len(r.text))
            for r in conn.execute(select(delivery_attempts).order_by(delivery_attempts.c.id))
        ]
    d0, d1, d2, d3 = (rows[i] for i in mine)
    assert (d0.status, d0.last_code, d0.message_id, d0.attempts) == ("sent", 250, "<m0@example.org>", 1)
    assert (d1.status, d1.last_code, len(d1.last_text), d1.attempts) == ("failed", None, 1000, 3)
    assert (d2.status, d2.last_code, d2.attempts) == ("deferred", 451, 1)
    assert d2.next_attempt.replace(tzinfo=UTC) == retry and d2.updated_at.replace(tzinfo=UTC) == later
    assert (d3.status, d3.message_id) == ("sent", "<a@x>")
    assert (rows[theirs].status, rows[theirs].claimed_by) == ("sending", "other")
    assert attempts == [
        (mine[3], "sent", 250, 2),
        (mine[2], "deferred", 451, 10),
        (mine[0], "sent", 250, 12),
        (mine[1], "failed", None, 1000),
    ]


def test_a_hostile_relays_reply_is_stored_readable(
    store: Store, make_settings: Callable[..., Settings]
) -> None:
    """NUL and bytes that are not UTF-8 (kept by aiosmtplib as lone surrogates) in a reply.

    Neither can be stored as text as it is; a batch with such a reply must still be
    recorded, with those characters shown as escapes.
    """
    settings = make_settings(lists=LISTS)
    make_issue(store, settings, 2)
    a, b = (c.delivery_id for c in store.issues.claim("w", 2, NOW))
    hostile = "550 5.1.1 no\x00such user \udcff\udcfe here"
    batch = [
        Outcome(a, DeliveryStatus.FAILED, 550, hostile, NOW, 1),
        Outcome(b, DeliveryStatus.SENT, 250, "2.0.0 Ok: queued", NOW, 1),
    ]
    assert store.issues.record(batch, worker="w") == 2
    with store.engine.connect() as conn:
        texts = dict(conn.execute(select(deliveries.c.id, deliveries.c.last_text)).all())
        attempts = [r.text for r in conn.execute(select(delivery_attempts).order_by(delivery_attempts.c.id))]
    assert texts == {a: "550 5.1.1 no\\x00such user \\xff\\xfe here", b: "2.0.0 Ok: queued"}
    assert attempts == [texts[a], texts[b]]
