"""Shared fixtures: a store on SQLite *and* PostgreSQL, settings built from dicts.

PostgreSQL is the machine's local server (127.0.0.1:5432, trust auth, database
``test``); each test gets a schema of its own so tests never see each other's rows.
Outside CI a missing PostgreSQL skips those tests; in CI (``CI=true``) it fails them,
because a skipped check is not a passed one.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from sqlalchemy import create_engine, text

from publisher.config import Settings, settings_from_dict
from publisher.store import Store

# Fixtures: smtp_server, tls_files; upstream; dovecot.
pytest_plugins = ("tests.smtp_server", "tests.http_server", "tests.imap_server")

PG_URL = os.environ.get("PUBLISHER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as e:  # any failure means "not reachable"
        return str(e).splitlines()[0]


def require_postgres() -> None:
    """Skip (locally) or fail (in CI) when PostgreSQL cannot be reached."""
    problem = _pg_available()
    if problem:
        msg = f"PostgreSQL at {PG_URL} unreachable: {problem}"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL to a fresh, empty schema on the local PostgreSQL, dropped afterwards."""
    require_postgres()
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'publisher.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An migrated, empty store on each backend."""
    s = Store(store_url)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'publisher.db'}")
    yield s
    s.close()


BASE_CONFIG: dict[str, Any] = {
    "site": {
        "title": "Social Protection Department",
        "base_url": "http://127.0.0.1:8080",
        "language": "en",
        "timezone": "Europe/Zurich",
        "postal_address": "Route des Morillons 4, 1211 Geneva 22, Switzerland",
    },
    "categories": [
        {"slug": "press-releases", "title": "Press releases", "labels": ["Press release"]},
        {"slug": "news", "title": "News", "labels": ["News"]},
        {"slug": "comments", "title": "Comments", "labels": ["Comment"]},
        {"slug": "video-messages", "title": "Video messages", "labels": ["Video message"]},
        {"slug": "events", "title": "Events", "labels": ["Event", "ILO Centenary Event"]},
        {"slug": "publications", "title": "Publications", "labels": ["Publication", "Conference paper"]},
    ],
    # Readers see only items of configured sources: items that tests save directly say
    # source="sample" (an empty folder made by make_settings, so ingesting it adds nothing).
    "sources": [{"name": "sample", "type": "directory", "path": "content"}],
}


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build validated Settings from BASE_CONFIG plus overrides, rooted in tmp_path."""

    def make(**overrides: Any) -> Settings:
        data: dict[str, Any] = {
            k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in BASE_CONFIG.items()
        }
        data.setdefault("storage", {"url": f"sqlite:///{tmp_path / 'publisher.db'}"})
        data["feeds"] = {"output_dir": str(tmp_path / "public")}
        data["outbox"] = {"path": str(tmp_path / "outbox")}
        (tmp_path / "content").mkdir(exist_ok=True)
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return settings_from_dict(data, tmp_path / "config.toml")

    return make


class DkimKey(NamedTuple):
    """A DKIM signing key on disk and the ``p=`` value of its DNS record."""

    path: Path
    public: str

    def dns(self, name: bytes, timeout: int = 5) -> bytes:
        """dkimpy's ``dnsfunc``: the TXT record of ``mail2024._domainkey.example.org``, the
        selector and domain the tests sign with; any other name is a test's mistake."""
        assert name == f"{DKIM_SELECTOR}._domainkey.{DKIM_DOMAIN}.".encode()
        return f"v=DKIM1; k=rsa; p={self.public}".encode()


DKIM_SELECTOR = "mail2024"
DKIM_DOMAIN = "example.org"


@pytest.fixture(scope="session")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> DkimKey:
    """A fresh RSA-2048 key made by OpenSSL, once per run (making one takes a while)."""
    path = tmp_path_factory.mktemp("dkim") / "dkim.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path)],
        check=True,
        capture_output=True,
    )
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return DkimKey(path, base64.b64encode(der).decode())
