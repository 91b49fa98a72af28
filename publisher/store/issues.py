"""Digest issues, the items they hold, and the delivery ledger."""

from __future__ import annotations

from sqlalchemy import Engine


class IssueStore:
    """Issues unique per (list, period) and deliveries unique per (issue, subscriber)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
