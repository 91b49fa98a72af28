"""Schedule state (first seen, paused, last fire) and the record of every job run."""

from __future__ import annotations

from sqlalchemy import Engine


class RunStore:
    """What the scheduler must remember across restarts; state never lives in config."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
