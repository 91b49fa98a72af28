"""Opening the store: migrations at start, also when several processes start at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect

from publisher.store import Store

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
