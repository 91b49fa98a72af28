"""The subscriber store on SQLite and PostgreSQL: bulk import, sticky suppressions, reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select

from publisher.models import Consent, SubscriptionStatus, email_hash
from publisher.store import Store
from publisher.store.subscriber_import import ImportRow
from publisher.store.tables import subscribers, subscription_events, subscriptions

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
IMPORT = Consent(at=NOW, method="import", source="weekly.csv")


def rows(n: int, language: str | None = None) -> list[ImportRow]:
    return [ImportRow(email=f"user{i}@example.org", name=f"User {i}", language=language) for i in range(n)]


def test_bulk_import_spans_batches_and_transactions(store: Store) -> None:
    calls: list[tuple[int, int]] = []
    outcome = store.subscribers.import_rows(
        "weekly",
        rows(25),
        IMPORT,
        "en",
        batch_size=10,
        transaction_rows=20,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert (outcome.added, outcome.updated, outcome.unchanged) == (25, 0, 0)
    assert calls == [(0, 25), (10, 25), (20, 25), (25, 25)]
    confirmed = store.subscribers.confirmed("weekly")
    assert [s.email for s in confirmed] == [f"user{i}@example.org" for i in range(25)]
    assert {s.language for s in confirmed} == {"en"}
    assert len({s.secret for s in confirmed}) == 25
    assert all(len(s.secret) == 32 and int(s.secret, 16) >= 0 for s in confirmed)


def test_import_records_consent_and_one_event_per_new_subscription(store: Store) -> None:
    store.subscribers.import_rows("weekly", rows(2), IMPORT, "en")
    subscriber_id = store.subscribers.find_id("user1@example.org")
    assert subscriber_id is not None
    record = store.subscribers.record(subscriber_id)
    assert record is not None
    (weekly,) = record.lists
    assert (weekly.status, weekly.consent_at, weekly.consent_method, weekly.consent_source) == (
        SubscriptionStatus.CONFIRMED,
        NOW,
        "import",
        "weekly.csv",
    )
    assert [(e.event, e.detail, e.at) for e in record.events] == [("confirmed", "import: weekly.csv", NOW)]


def test_reimport_changes_only_what_differs(store: Store) -> None:
    store.subscribers.import_rows("weekly", rows(3), IMPORT, "en")
    changed = rows(3)
    changed[1].name = "Renamed"
    changed[2].attributes = {"org": "ILO"}
    later = Consent(at=NOW + timedelta(days=7), method="import", source="weekly.csv")
    outcome = store.subscribers.import_rows("weekly", changed, later, "en")
    assert (outcome.added, outcome.updated, outcome.unchanged) == (0, 2, 1)
    by_email = {s.email: s for s in store.subscribers.confirmed("weekly")}
    assert by_email["user1@example.org"].name == "Renamed"
    assert by_email["user2@example.org"].attributes == {"org": "ILO"}
    subscriber_id = store.subscribers.find_id("user0@example.org")
    assert subscriber_id is not None
    record = store.subscribers.record(subscriber_id)
    assert record is not None and record.lists[0].consent_at == NOW  # first consent kept


def test_suppressed_rows_are_kept_suppressed(store: Store) -> None:
    store.subscribers.import_rows("weekly", rows(3), IMPORT, "en")
    ids = [store.subscribers.find_id(f"user{i}@example.org") for i in range(3)]
    assert None not in ids
    later = Consent(at=NOW + timedelta(hours=1), method="one-click")
    assert store.subscribers.change_status(
        ids[0] or 0, "weekly", SubscriptionStatus.UNSUBSCRIBED, consent=later
    )
    assert store.subscribers.change_status(ids[1] or 0, "weekly", SubscriptionStatus.BOUNCED, consent=later)
    assert store.subscribers.forget(ids[2] or 0, NOW)
    outcome = store.subscribers.import_rows("weekly", rows(3), IMPORT, "en")
    assert (outcome.suppressed_kept, outcome.added, outcome.updated, outcome.unchanged) == (3, 0, 0, 0)
    assert store.subscribers.counts_by_status("weekly") == {
        "pending": 0,
        "confirmed": 0,
        "unsubscribed": 2,
        "bounced": 1,
        "complained": 0,
    }


def test_suppression_is_lifted_only_on_request(store: Store) -> None:
    store.subscribers.import_rows("weekly", rows(1), IMPORT, "en")
    sid = store.subscribers.find_id("user0@example.org") or 0
    consent = Consent(at=NOW, method="cli")
    assert store.subscribers.change_status(sid, "weekly", SubscriptionStatus.COMPLAINED, consent=consent)
    assert not store.subscribers.change_status(sid, "weekly", SubscriptionStatus.CONFIRMED, consent=consent)
    assert store.subscribers.statuses(sid) == {"weekly": SubscriptionStatus.COMPLAINED}
    assert store.subscribers.change_status(
        sid, "weekly", SubscriptionStatus.CONFIRMED, consent=consent, lift_suppression=True
    )
    assert store.subscribers.statuses(sid) == {"weekly": SubscriptionStatus.CONFIRMED}


def test_suppression_keeps_the_earlier_consent(store: Store) -> None:
    store.subscribers.import_rows("weekly", rows(1), IMPORT, "en")
    sid = store.subscribers.find_id("user0@example.org") or 0
    later = Consent(at=NOW + timedelta(days=1), method="one-click", source="192.0.2.1")
    store.subscribers.change_status(sid, "weekly", SubscriptionStatus.UNSUBSCRIBED, consent=later)
    record = store.subscribers.record(sid)
    assert record is not None
    weekly = record.lists[0]
    assert (weekly.status, weekly.consent_at, weekly.consent_method) == ("unsubscribed", NOW, "import")
    assert weekly.updated_at == later.at
    assert [(e.event, e.detail) for e in record.events][-1] == ("unsubscribed", "one-click: 192.0.2.1")


def test_confirmed_filters_by_language_and_pages(store: Store) -> None:
    store.subscribers.import_rows("weekly", rows(5, "fr"), IMPORT, "en")
    store.subscribers.import_rows("weekly", [ImportRow(email="en@example.org")], IMPORT, "en")
    store.subscribers.import_rows("daily", [ImportRow(email="other@example.org")], IMPORT, "en")
    assert [s.email for s in store.subscribers.confirmed("weekly", ["en"])] == ["en@example.org"]
    assert len(store.subscribers.confirmed("weekly", ["fr"])) == 5
    assert len(store.subscribers.confirmed("weekly")) == 6
    pages = list(store.subscribers.iter_confirmed("weekly", chunk=4))
    assert [len(p) for p in pages] == [4, 2]
    assert all(s.list_slug == "weekly" and s.status is SubscriptionStatus.CONFIRMED for p in pages for s in p)


def test_get_and_secret(store: Store) -> None:
    store.subscribers.import_rows("weekly", rows(1), IMPORT, "en")
    store.subscribers.import_rows("daily", rows(1), IMPORT, "en")
    sid = store.subscribers.find_id("USER0@EXAMPLE.ORG")  # found by hash, whatever the case
    assert sid is not None
    weekly = store.subscribers.get(sid, "weekly")
    assert weekly is not None and (weekly.email, weekly.name, weekly.list_slug) == (
        "user0@example.org",
        "User 0",
        "weekly",
    )
    first = store.subscribers.get(sid)
    assert first is not None and first.list_slug == "daily"
    assert store.subscribers.get(sid, "monthly") is None
    assert store.subscribers.get(sid + 1000) is None
    assert store.subscribers.secret(sid) == weekly.secret
    assert store.subscribers.secret(sid + 1000) is None


def test_forget_erases_but_keeps_the_hash(store: Store) -> None:
    store.subscribers.import_rows(
        "weekly", [ImportRow(email="Ana@example.org", name="Ana", attributes={"org": "ILO"})], IMPORT, "en"
    )
    sid = store.subscribers.find_id("Ana@example.org") or 0
    assert store.subscribers.forget(sid, NOW)
    assert not store.subscribers.forget(sid, NOW)
    record = store.subscribers.record(sid)
    assert record is not None
    assert (record.email, record.name, record.attributes, record.forgotten_at) == (None, "", {}, NOW)
    assert record.lists[0].status is SubscriptionStatus.UNSUBSCRIBED
    assert record.lists[0].consent_source is None
    assert all(e.detail is None for e in record.events)
    assert record.events[-1].event == "forgotten"
    assert store.subscribers.find_id("ana@example.org") == sid
    assert email_hash("ANA@example.org") == email_hash("ana@example.org")
    assert store.subscribers.confirmed("weekly") == []
    assert list(store.subscribers.export_rows("weekly")) == []


def test_unserved_by_language_is_what_receives_drops_for_the_languages(store: Store) -> None:
    """A subscriber whose language a list does not offer is counted, never silently skipped."""
    store.subscribers.import_rows("weekly", rows(3, "fr"), IMPORT, "en")
    store.subscribers.import_rows(
        "weekly",
        [
            ImportRow(email="en@example.org", language="en"),
            ImportRow(email="es1@example.org", language="es"),
            ImportRow(email="es2@example.org", language="es"),
            ImportRow(email="gone@example.org", language="es", status=SubscriptionStatus.UNSUBSCRIBED),
            ImportRow(email="erased@example.org", language="es"),
        ],
        IMPORT,
        "en",
    )
    store.subscribers.import_rows(
        "daily", [ImportRow(email="other@example.org", language="de")], IMPORT, "en"
    )
    erased = store.subscribers.find_id("erased@example.org")
    assert erased is not None and store.subscribers.forget(erased, NOW)

    assert store.subscribers.unserved_by_language("weekly", ["fr"]) == {"en": 1, "es": 2}
    assert store.subscribers.unserved_by_language("weekly", ["fr", "en"]) == {"es": 2}
    assert store.subscribers.unserved_by_language("weekly", []) == {}
    assert store.subscribers.unserved_by_language("weekly", None) == {}
    served = store.subscribers.count_confirmed("weekly", ["fr"])
    assert served + 3 == store.subscribers.count_confirmed("weekly") == 6


# -- PostgreSQL imports by COPY: the same store as SQLite's batches ------------------------


def _file_rows(n: int, generation: int) -> list[ImportRow]:
    """A list file of ``n`` rows; a later ``generation`` renames, re-tags and drops some."""
    out = []
    for i in range(n):
        attributes = {"org": f"Ministry {i % 7}"} if i % 3 == 0 else {}
        if generation and i % 5 == 0:
            attributes = {"team": f"T{i % 4}", "org": "ILO"} if i % 2 else {"team": "T"}
        status = SubscriptionStatus.CONFIRMED
        if i % 50 == 7 or (generation and i % 50 == 11):
            status = SubscriptionStatus.UNSUBSCRIBED if i % 2 else SubscriptionStatus.BOUNCED
        out.append(
            ImportRow(
                email=f"Reader.{i}@example{i % 9}.org",
                name=(f"Zoë \\N\t{i}" if generation and i % 4 == 1 else f"Reader {i}") if i % 10 else None,
                language="de" if generation and i % 6 == 3 else ["en", "fr", None, "es-MX"][i % 4],
                attributes=attributes,
                status=status,
            )
        )
    return out[generation * 100 :] + [
        ImportRow(email=f"late.{i}@example.org") for i in range(generation * 50)
    ]


def _scenario(store: Store) -> tuple[list[tuple[int, ...]], dict[str, list[Any]]]:
    """Import, change statuses by hand, import again (and a dry run): outcomes and the store."""
    outcomes = [store.subscribers.import_rows("weekly", _file_rows(1000, 0), IMPORT, "fr")]
    store.subscribers.import_rows(
        "daily", [ImportRow(email=f"reader.{i}@example{i % 9}.org") for i in range(990, 1010)], IMPORT, "en"
    )
    later = Consent(at=NOW + timedelta(hours=1), method="cli", source="admin")
    for i, status in [(200, "unsubscribed"), (201, "complained"), (202, "pending"), (203, "pending")]:
        sid = store.subscribers.find_id(f"reader.{i}@example{i % 9}.org") or 0
        assert store.subscribers.change_status(sid, "weekly", SubscriptionStatus(status), consent=later)
    assert store.subscribers.forget(store.subscribers.find_id("reader.204@example6.org") or 0, later.at)
    again = Consent(at=NOW + timedelta(days=7), method="import", source="weekly-2.csv")
    second = [*_file_rows(1000, 1), ImportRow(email="reader.1005@example6.org", name="Daily Reader")]
    count = store.subscribers.count_confirmed_after_import("weekly", None, second, again, "fr")
    outcomes.append(store.subscribers.import_rows("weekly", second, again, "fr"))
    assert count == store.subscribers.count_confirmed("weekly")
    return [(o.added, o.updated, o.unchanged, o.suppressed_kept) for o in outcomes], _dump(store)


def _dump(store: Store) -> dict[str, list[Any]]:
    """Every row the import writes, by address (ids differ between stores only in value)."""
    with store.engine.connect() as conn:
        email = {r.id: r.email_hash for r in conn.execute(select(subscribers.c.id, subscribers.c.email_hash))}
        people = [
            (r.email, r.email_hash, r.name, r.language, list(r.attributes.items()), r.created, r.forgotten_at)
            for r in conn.execute(select(subscribers).order_by(subscribers.c.id))
        ]
        lists = sorted(
            (
                email[r.subscriber_id],
                r.list_slug,
                r.status,
                r.consent_at,
                r.consent_method,
                r.consent_source,
                r.updated_at,
            )
            for r in conn.execute(select(subscriptions))
        )
        events = sorted(
            (email[r.subscriber_id], r.id_rank, r.list_slug, r.at, r.event, r.detail)
            for r in conn.execute(
                select(
                    subscription_events,
                    func.rank()
                    .over(partition_by=subscription_events.c.subscriber_id, order_by=subscription_events.c.id)
                    .label("id_rank"),
                )
            )
        )
        keys = [r.secret for r in conn.execute(select(subscribers.c.secret))]
    assert len(set(keys)) == len(keys) and all(len(k) == 32 and int(k, 16) >= 0 for k in keys)
    return {"subscribers": people, "subscriptions": lists, "events": events}


def test_postgresql_import_by_copy_leaves_the_same_store_as_sqlite(pg_url: str, tmp_path: Path) -> None:
    """1k rows, every case of the rules, imported twice: outcomes and rows equal on both backends."""
    results = []
    for url in (f"sqlite:///{tmp_path / 'publisher.db'}", pg_url):
        store = Store(url)
        try:
            results.append(_scenario(store))
        finally:
            store.close()
    (sqlite_outcomes, sqlite_rows), (pg_outcomes, pg_rows) = results
    assert pg_outcomes == sqlite_outcomes
    assert sqlite_outcomes[0] == (980, 0, 0, 20)
    assert sqlite_outcomes[1][0] > 0 and sqlite_outcomes[1][1] > 0 and sqlite_outcomes[1][3] > 20
    for table in ("subscribers", "subscriptions", "events"):
        assert pg_rows[table] == sqlite_rows[table], table


def test_postgresql_import_reruns_when_an_address_is_signed_up_meanwhile(pg_url: str) -> None:
    """A sign-up committed after the plan is made: the insert fails, the import runs again."""
    store = Store(pg_url)
    other = Store(pg_url)
    signed_up: list[int] = []
    plans: list[str] = []

    @event.listens_for(store.engine, "after_cursor_execute")
    def sign_up_after_the_first_plan(*args: Any) -> None:
        if args[2].lstrip().startswith("CREATE TEMPORARY TABLE import_plan"):
            plans.append(args[2])
            if not signed_up:
                signed_up.append(other.subscribers.create("user3@example.org", "Web", "de", {}, NOW))

    try:
        outcome = store.subscribers.import_rows("weekly", rows(5), IMPORT, "en")
        assert len(plans) == 2
        assert (outcome.added, outcome.updated, outcome.unchanged) == (5, 0, 0)
        assert store.subscribers.find_id("user3@example.org") == signed_up[0]
        web = store.subscribers.get(signed_up[0], "weekly")
        assert web is not None and (web.name, web.language) == ("User 3", "de")
        assert len(store.subscribers.confirmed("weekly")) == 5
    finally:
        other.close()
        store.close()
