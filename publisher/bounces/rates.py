"""Bounce and complaint rates of the last 30 days, with the warnings ``status`` prints.

Why these thresholds: mailbox providers judge bulk senders by them (Gmail's and
Yahoo's 2024 sender rules ask for spam complaints well under 0.3%, with 0.1% as the
line to stay under; bounce rates above about 2% are commonly read as a list that is not
kept clean). Above them, mail starts going to spam folders or being refused, for every
subscriber.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from publisher.store import Store
from publisher.store.feedback import FeedbackRates

WINDOW = timedelta(days=30)
BOUNCE_WARNING = 0.02
COMPLAINT_WARNING = 0.001


def feedback_rates(store: Store, now: datetime) -> FeedbackRates:
    """The rates over :data:`WINDOW` up to ``now``, with a warning for each one too high."""
    rates = store.feedback.rates(now - WINDOW)
    warnings = []
    if rates.bounce_rate > BOUNCE_WARNING:
        warnings.append(
            f"bounce rate {rates.bounce_rate:.1%} over the last 30 days is above {BOUNCE_WARNING:.0%}: "
            "mailbox providers may refuse or junk our mail; check how addresses get on the lists"
        )
    if rates.complaint_rate > COMPLAINT_WARNING:
        warnings.append(
            f"complaint rate {rates.complaint_rate:.2%} over the last 30 days is above "
            f"{COMPLAINT_WARNING:.1%}: mailbox providers may junk our mail; check consent and content"
        )
    return replace(rates, warnings=warnings)
