"""`publisher storage copy`: a site moves from the embedded SQLite to PostgreSQL (and back)
and keeps everything: consent records, history, issues, deliveries, token secrets.

Real stores on both backends; the command through the CLI as an admin runs it.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, text

from publisher.app import Publisher
from publisher.config import load_config
from publisher.errors import StoreError
from publisher.store import Store
from publisher.store import tables as t
from publisher.store.copy import copy_store
from publisher.web.app import create_app
from tests.test_cli import cli, site

__all__ = ["site"]  # the fixture, shared with test_cli

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def everything(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order, as the store's types read them."""
    with engine.connect() as conn:
        return {
            table.name: [
                tuple(row) for row in conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in t.metadata.sorted_tables
        }


def mails(site: Path) -> list[email.message.EmailMessage]:
    folder = site / "var" / "outbox" / "new"
    found = []
    for path in sorted(folder.iterdir()):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        found.append(message)
    return found


def use_store(site: Path, url: str) -> None:
    config = site / "config.toml"
    before = config.read_text(encoding="utf-8")
    after = before.replace('url = "sqlite:///var/publisher.db"', f'url = "{url}"')
    assert after != before, "config.toml's [storage] url changed shape"
    config.write_text(after, encoding="utf-8")


def test_a_sqlite_site_moves_to_postgresql_and_keeps_every_row_and_promise(site: Path, pg_url: str) -> None:
    assert cli(site, "publish").returncode == 0  # items, feeds, a digest to each list
    (site / "more.csv").write_text("email,name,team\nzoe@example.org,Zoé Ä,Geneva\n", encoding="utf-8")
    assert cli(site, "subscribers", "import", "weekly", "more.csv").returncode == 0
    assert cli(site, "subscribers", "remove", "weekly", "jane.smith@example.org").returncode == 0
    suppressed = cli(site, "subscribers", "suppress", "carlos.mendez@example.org", "--reason", "bounced")
    assert suppressed.returncode == 0, suppressed.stderr
    assert cli(site, "subscribers", "forget", "press.desk@example.org", "--yes").returncode == 0
    sent_before = mails(site)
    source = Store(f"sqlite:///{site / 'var' / 'publisher.db'}")
    rows_before = everything(source.engine)
    assert rows_before["subscription_events"] and rows_before["deliveries"] and rows_before["issues"]

    copied = cli(site, "storage", "copy", pg_url, "--json")
    assert copied.returncode == 0, copied.stderr
    report = json.loads(copied.stdout)
    assert report["tables"] == {name: len(rows) for name, rows in rows_before.items()}
    assert report["rows"] == sum(len(rows) for rows in rows_before.values())
    target = Store(pg_url)
    assert everything(target.engine) == rows_before  # every value, ids and times included
    assert everything(source.engine) == rows_before  # the source is only read
    source.close()

    use_store(site, pg_url)
    again = cli(site, "digest", "send", "weekly")
    assert again.returncode == 0 and "exists already" in again.stdout, again  # never twice
    assert len(mails(site)) == len(sent_before)
    shown = json.loads(cli(site, "subscribers", "show", "zoe@example.org", "--json").stdout)
    assert shown["name"] == "Zoé Ä" and shown["attributes"] == {"team": "Geneva"}
    assert [(s["list_slug"], s["status"], s["consent_method"]) for s in shown["lists"]] == [
        ("weekly", "confirmed", "import")
    ]
    carlos = json.loads(cli(site, "subscribers", "show", "carlos.mendez@example.org", "--json").stdout)
    assert {s["status"] for s in carlos["lists"]} == {"bounced"}
    # New rows take ids after the copied ones (PostgreSQL's sequences were moved on).
    assert cli(site, "subscribers", "add", "weekly", "new.one@example.org").returncode == 0
    new_id = json.loads(cli(site, "subscribers", "show", "new.one@example.org", "--json").stdout)["id"]
    assert new_id == max(row[0] for row in rows_before["subscribers"]) + 1

    # A link in a mail sent from the SQLite store works against PostgreSQL: same secrets.
    amina = next(m for m in sent_before if "amina.diallo@example.org" in str(m["To"]))
    link = str(amina["List-Unsubscribe"]).strip("<>")
    publisher = Publisher(load_config(site / "config.toml"))
    transport = httpx.ASGITransport(app=create_app(publisher))

    async def one_click() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            return await client.post(link, content=b"List-Unsubscribe=One-Click")

    answer = asyncio.run(one_click())
    publisher.close()
    assert answer.status_code == 200, answer.text
    amina_now = json.loads(cli(site, "subscribers", "show", "amina.diallo@example.org", "--json").stdout)
    assert {s["list_slug"]: s["status"] for s in amina_now["lists"]}["weekly"] == "unsubscribed"
    target.close()


def test_postgresql_copies_back_to_sqlite(tmp_path: Path, pg_url: str) -> None:
    source = Store(pg_url)
    with source.engine.begin() as conn:
        conn.execute(
            t.subscribers.insert(),
            [
                {
                    "email": f"r{i}@example.org",
                    "email_hash": f"{i:064x}",
                    "name": "Ré\tader\n",
                    "language": "fr",
                    "secret": f"{i:032x}",
                    "attributes": {"team": "Genève", "n": str(i)},
                    "created": NOW,
                }
                for i in range(12_345)
            ],
        )
    rows = everything(source.engine)
    target = Store(f"sqlite:///{tmp_path / 'copy.db'}")
    report = copy_store(source.engine, target.engine, batch_rows=1_000)
    assert {c.name: c.rows for c in report.tables}["subscribers"] == 12_345
    assert everything(target.engine) == rows
    source.close()
    target.close()


def test_a_copy_refuses_a_target_with_data_the_store_itself_and_a_send_in_flight(
    site: Path, pg_url: str, tmp_path: Path
) -> None:
    assert cli(site, "publish").returncode == 0
    target = Store(pg_url)
    with target.engine.begin() as conn:
        conn.execute(t.site_secrets.insert(), {"name": "someone-else", "value": "x"})
    before = everything(target.engine)

    full = cli(site, "storage", "copy", pg_url)
    assert full.returncode == 1 and full.stdout == ""
    assert (
        "already holds data (table site_secrets: 1 row(s)); copy only into a new, empty database"
        in full.stderr
    )
    assert everything(target.engine) == before

    itself = cli(site, "storage", "copy", f"sqlite:///{site / 'var' / '..' / 'var' / 'publisher.db'}")
    assert itself.returncode == 1 and "is the configured store" in itself.stderr, itself.stderr

    with Store(f"sqlite:///{site / 'var' / 'publisher.db'}").engine.begin() as conn:
        conn.execute(text("UPDATE deliveries SET status = 'sending' WHERE id = 1"))
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    busy = cli(site, "storage", "copy", elsewhere)
    assert busy.returncode == 1 and "1 message(s) are in flight" in busy.stderr, busy.stderr
    assert "stop `publisher run` and every `publisher worker`" in busy.stderr
    assert all(not rows for rows in everything(Store(elsewhere).engine).values())

    with Store(f"sqlite:///{site / 'var' / 'publisher.db'}").engine.begin() as conn:
        conn.execute(text("UPDATE deliveries SET status = 'sent' WHERE id = 1"))
    # A running daemon holds the scheduler lock: the copy is refused, not made under it.
    daemon = Publisher(load_config(site / "config.toml"))
    lock = daemon.scheduler_lock()
    assert lock.acquire()
    running = cli(site, "storage", "copy", elsewhere)
    lock.release()
    daemon.close()
    assert running.returncode == 1 and "`publisher run` is running on this store" in running.stderr
    assert all(not rows for rows in everything(Store(elsewhere).engine).values())
    assert cli(site, "storage", "copy", elsewhere).returncode == 0  # once it is stopped

    wrong = cli(site, "storage", "copy", "postgresql://someone:s3cret@127.0.0.1:1/none")
    assert wrong.returncode == 1 and "s3cret" not in wrong.stderr and "***" in wrong.stderr, wrong.stderr
    target.close()


def test_a_copy_that_fails_half_way_leaves_the_target_empty(tmp_path: Path, pg_url: str) -> None:
    """A table the target refuses (a trigger stands for a full disk or a dropped
    connection) after others were written: one transaction, so nothing stays."""
    source = Store(f"sqlite:///{tmp_path / 'source.db'}")
    with source.engine.begin() as conn:
        new = {"email": "a@example.org", "email_hash": "a" * 64, "secret": "s" * 32, "created": NOW}
        conn.execute(t.subscribers.insert(), new)
        confirmed = {"subscriber_id": 1, "list_slug": "weekly", "status": "confirmed", "updated_at": NOW}
        conn.execute(t.subscriptions.insert(), confirmed)
    target = Store(pg_url)
    with target.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON subscriptions FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )
    with pytest.raises(StoreError, match=r"nothing was kept there: .*disk full"):
        copy_store(source.engine, target.engine)
    assert all(not rows for rows in everything(target.engine).values())
    source.close()
    target.close()
