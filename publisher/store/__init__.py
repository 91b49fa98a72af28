"""The store: SQLite or PostgreSQL behind one facade, one repository per concern.

``Store(url)`` creates the engine and applies migrations; fronts never touch tables
directly, they call :class:`publisher.app.Publisher`, which calls these repositories.
"""

from __future__ import annotations

from sqlalchemy import Engine

from publisher.store.admin import AdminStore
from publisher.store.db import make_engine, migrate
from publisher.store.feedback import FeedbackStore
from publisher.store.issues import IssueStore
from publisher.store.items import ItemStore, SourceStateStore
from publisher.store.runs import RunStore
from publisher.store.signups import SignupStore
from publisher.store.subscribers import SubscriberStore
from publisher.store.workers import WorkerStore


class Store:
    """All repositories over one engine; construction migrates the schema."""

    def __init__(self, url: str, *, engine: Engine | None = None) -> None:
        self.url = url
        self.engine = engine or make_engine(url)
        migrate(self.engine)
        self.items = ItemStore(self.engine)
        self.sources = SourceStateStore(self.engine)
        self.subscribers = SubscriberStore(self.engine)
        self.issues = IssueStore(self.engine)
        self.runs = RunStore(self.engine)
        self.signups = SignupStore(self.engine)
        self.feedback = FeedbackStore(self.engine)
        self.admin = AdminStore(self.engine)
        self.workers = WorkerStore(self.engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()
