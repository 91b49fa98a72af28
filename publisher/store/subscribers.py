"""Subscribers, their per-list subscriptions and the history of each change."""

from __future__ import annotations

from sqlalchemy import Engine


class SubscriberStore:
    """Addresses, statuses per list, consent and events."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
