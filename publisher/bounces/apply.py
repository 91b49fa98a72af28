"""One finding of a report -> store changes, trusted only when it names a real delivery.

(Interface first; the body is completed in the following commits.)
"""

from __future__ import annotations

from publisher.config import Settings
from publisher.models import Clock, FeedbackEvent, FeedbackOutcome
from publisher.store import Store


def apply_feedback(settings: Settings, store: Store, clock: Clock, event: FeedbackEvent) -> FeedbackOutcome:
    """Record ``event`` and apply what its kind says, or change nothing (see the module)."""
    return FeedbackOutcome.UNMATCHED
