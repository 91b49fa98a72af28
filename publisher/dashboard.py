"""What the admin console's dashboard shows, read in one place.

The dashboard answers "is everything fetching, sending and running?" at a glance: the
schedules with their next and last runs, issues being sent now, the last issues of
each list by delivery status, the queue, subscribers by status, bounce and complaint
rates, and the sources whose last fetch failed. It builds on
:func:`publisher.scheduler.status.status_report` so the console and ``publisher
status`` never disagree.

Bounce and complaint rates come from what the store has today: deliveries marked
``bounced`` and subscriptions marked ``bounced``/``complained``. When bounce events
(DSNs, ARF reports, webhooks) are stored, :func:`list_rates` is the one place to read
them instead; the template only shows :class:`ListRates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from publisher.config import Settings
from publisher.models import SourceState, SubscriptionStatus
from publisher.scheduler.status import StatusReport, status_report
from publisher.store import Store
from publisher.store.issues import IssueSummary

#: How many issues per list the dashboard shows, and how many recent issues it scans.
ISSUES_PER_LIST = 3
RECENT_ISSUES = 200


@dataclass(frozen=True, slots=True)
class ListRates:
    """Bounce and complaint rates of one list; None where nothing is known yet."""

    slug: str
    attempted: int  # deliveries of the scanned issues that reached a final outcome
    bounced: int
    bounce_rate: float | None  # bounced / attempted
    subscribers: int  # every subscription ever on the list (any status)
    complained: int
    complaint_rate: float | None  # complained / subscribers


@dataclass(frozen=True, slots=True)
class Dashboard:
    status: StatusReport
    sending_now: list[IssueSummary]  # issues with deliveries pending, sending or deferred
    issues_by_list: dict[str, list[IssueSummary]]  # the newest few per configured list
    rates: list[ListRates]
    failed_sources: list[SourceState]  # sources whose last fetch failed, with the error


def list_rates(slug: str, issues: list[IssueSummary], counts: dict[str, int]) -> ListRates:
    """Rates from the ledger and subscription statuses (the hook for stored bounce events)."""
    attempted = sum(i.sent + i.bounced + i.failed for i in issues)
    bounced = sum(i.bounced for i in issues)
    subscribers = sum(counts.values())
    complained = counts.get(SubscriptionStatus.COMPLAINED.value, 0)
    return ListRates(
        slug=slug,
        attempted=attempted,
        bounced=bounced,
        bounce_rate=bounced / attempted if attempted else None,
        subscribers=subscribers,
        complained=complained,
        complaint_rate=complained / subscribers if subscribers else None,
    )


def dashboard(settings: Settings, store: Store, now: datetime) -> Dashboard:
    report = status_report(settings, store, now, limit=10)
    recent = store.issues.summaries(None, RECENT_ISSUES)
    by_list: dict[str, list[IssueSummary]] = {lst.slug: [] for lst in settings.lists}
    for issue in recent:
        by_list.setdefault(issue.list_slug, []).append(issue)
    counts = {lst.slug: lst.subscribers for lst in report.lists}
    return Dashboard(
        status=report,
        sending_now=[i for i in recent if i.pending + i.sending + i.deferred > 0],
        issues_by_list={slug: issues[:ISSUES_PER_LIST] for slug, issues in by_list.items()},
        rates=[list_rates(slug, by_list.get(slug, []), counts.get(slug, {})) for slug in by_list],
        failed_sources=[s for s in report.sources if s.last_error],
    )
