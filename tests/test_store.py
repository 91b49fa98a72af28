"""Opening the store: migrations at start, also when several processes start at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from publisher.store import Store
from publisher.store.tables import metadata

REPO = Path(__file__).parent.parent


def test_migrations_create_every_table(store: Store) -> None:
    tables = set(inspect(store.engine).get_table_names())
    assert {
        "items",
        "subscribers",
        "subscriptions",
        "issues",
        "deliveries",
        "job_runs",
        "alembic_version",
    } <= tables


def test_the_migrated_schema_is_the_one_tables_py_declares(store: Store) -> None:
    """Every migration together builds exactly store/tables.py: tables, columns, types,
    indexes and constraints. A migration that forgets a column or index (or a tables.py
    change without its migration) shows up here, not on a production upgrade."""
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_processes_starting_together_on_a_fresh_store_all_succeed(store_url: str) -> None:
    """`run` and two `worker`s started at once: one migrates, the others find it done."""
    code = "import sys; from publisher.store import Store; Store(sys.argv[1]).close()"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, store_url], cwd=REPO, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [(p.wait(60), p.stderr.read() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results] == [0, 0, 0], results
    reopened = Store(store_url)
    assert "deliveries" in inspect(reopened.engine).get_table_names()
    reopened.close()


def test_migration_0005_gives_stored_items_their_story_key_and_shows_them(store_url: str) -> None:
    """A store at 0003 with items: after the upgrade every item is shown and keyed by its link."""
    from datetime import UTC, datetime

    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy import create_engine, text

    from publisher.store.db import MIGRATIONS
    from publisher.store.items import link_key

    engine = create_engine(store_url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    when = datetime(2024, 3, 1, tzinfo=UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        conn.execute(
            text(
                "INSERT INTO items (id, source, language, title, summary, content, link, published, updated,"
                " content_hash, first_seen) VALUES (:id, 'sample', 'en', 'T', '', '', :link, :t, :t, 'h', :t)"
            ),
            [
                {"id": "a", "link": "https://WWW.Example.org/news/1#top", "t": when},
                {"id": "b", "link": "https://www.example.org/news/2", "t": when},
            ],
        )
    engine.dispose()

    store = Store(store_url)
    try:
        with store.engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT id, link_key FROM items")).all())
        assert rows == {
            "a": link_key("https://www.example.org/news/1"),
            "b": link_key("https://www.example.org/news/2"),
        }
        assert [i.id for i in store.items.latest(sources=["sample"])] == ["b", "a"]
    finally:
        store.close()
