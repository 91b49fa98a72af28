"""SQLAlchemy Core tables: the schema every store module queries.

Core, not ORM: ingest upserts and the delivery ledger write thousands of rows per
statement, which the ORM's unit of work would slow down for no gain. The schema is
created and changed only through Alembic migrations (``store/migrations``); edit this
file, then add a migration (``alembic revision --autogenerate``, see README).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.types import DateTime, TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on both SQLite and PostgreSQL.

    SQLite has no time zones: values are stored as naive UTC (ISO text sorts in time
    order) and come back as aware UTC, so comparisons never mix naive and aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; attach a time zone first")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stored: datetime = value
        if stored.tzinfo is None:
            return stored.replace(tzinfo=UTC)
        return stored.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

items = Table(
    "items",
    metadata,
    Column("id", String(512), primary_key=True),
    Column("source", String(100), nullable=False),
    Column("category", String(100), nullable=True),
    Column("label", String(200), nullable=True),
    Column("language", String(20), nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("content", Text, nullable=False, default=""),
    Column("link", Text, nullable=False),
    Column("published", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False),
    Column("image", Text, nullable=True),
    Column("content_hash", String(64), nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("image_alt", Text, nullable=True),
    Column("image_width", Integer, nullable=True),
    Column("image_height", Integer, nullable=True),
    Column("enclosure_url", Text, nullable=True),
    Column("enclosure_type", String(255), nullable=True),
    Column("enclosure_length", BigInteger, nullable=True),
    # Withdrawn by an admin (`items hide`): kept, never shown in feeds, pages or new issues.
    Column("hidden", Boolean, nullable=False, default=False, server_default=false()),
    # sha256 of the canonical link: one story read from two sources is shown once.
    Column("link_key", String(64), nullable=False, server_default=""),
    Index("ix_items_published", "published"),
    Index("ix_items_category_published", "category", "published"),
    Index("ix_items_link_key", "link_key"),
    # Covers ItemStore.history (feed archives): an index-only scan, never the wide rows.
    Index(
        "ix_items_history",
        "published",
        "id",
        "category",
        "language",
        "content_hash",
        "hidden",
        "source",
        "link_key",
    ),
)

source_state = Table(
    "source_state",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("etag", Text, nullable=True),
    Column("last_modified", Text, nullable=True),
    Column("last_fetch", UTCDateTime, nullable=True),
    Column("last_ok", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("item_count", Integer, nullable=False, default=0),
)

# The items a source's last read rejected (missing date, bad link, duplicate id ...),
# replaced at each read that parsed the source, so the console can list them with the
# fix; a failed or not-modified read keeps the previous ones.
ingest_rejections = Table(
    "ingest_rejections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("origin", Text, nullable=False),  # the item's file or URL
    Column("reason", Text, nullable=False),
    Index("ix_ingest_rejections_source", "source"),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=True, unique=True),  # NULL once forgotten
    Column("email_hash", String(64), nullable=False, unique=True),
    Column("name", Text, nullable=False, default=""),
    Column("language", String(20), nullable=False, default="en"),
    Column("secret", String(64), nullable=False),
    Column("attributes", JSON, nullable=False, default=dict),
    Column("created", UTCDateTime, nullable=False),
    Column("forgotten_at", UTCDateTime, nullable=True),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("list_slug", String(100), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("consent_at", UTCDateTime, nullable=True),
    Column("consent_method", String(50), nullable=True),  # import | web | cli
    Column("consent_source", Text, nullable=True),  # file name, IP, operator
    Column("updated_at", UTCDateTime, nullable=False),
    # A web sign-up's consent record: the exact text the form showed and its language,
    # then when and from where the confirmation link was used.
    Column("consent_text", Text, nullable=True),
    Column("consent_language", String(20), nullable=True),
    Column("confirmed_at", UTCDateTime, nullable=True),
    Column("confirmed_source", Text, nullable=True),
    # The status a pending web sign-up replaced (NULL: none); an unconfirmed sign-up
    # goes back to it when it expires, so an old unsubscribe is not lost.
    Column("pending_from", String(20), nullable=True),
    Index("ix_subscriptions_list_status", "list_slug", "status"),
)

subscription_events = Table(
    "subscription_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("list_slug", String(100), nullable=True),
    Column("at", UTCDateTime, nullable=False),
    Column("event", String(50), nullable=False),
    Column("detail", Text, nullable=True),
    Index("ix_subscription_events_subscriber", "subscriber_id"),
)

issues = Table(
    "issues",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("list_slug", String(100), nullable=False),
    Column("period_key", String(100), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("subject", Text, nullable=False),
    Column("forced", Boolean, nullable=False, default=False),
    Column("period_start", UTCDateTime, nullable=False),
    Column("schedule", String(100), nullable=True),
    # Items the issue covers but does not show (over the list's max_items): they count
    # as held, so the next issue does not bring them; the mail says how many.
    Column("omitted_items", Integer, nullable=False, server_default="0"),
    UniqueConstraint("list_slug", "period_key", name="uq_issues_list_period"),
)

issue_items = Table(
    "issue_items",
    metadata,
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("item_id", String(512), primary_key=True),
    Column("position", Integer, nullable=False),
    Index("ix_issue_items_item", "item_id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt", UTCDateTime, nullable=True),
    Column("last_code", Integer, nullable=True),
    Column("last_text", Text, nullable=True),
    Column("message_id", String(255), nullable=True),
    Column("claimed_at", UTCDateTime, nullable=True),
    # The sending worker's id (see ``workers``); kept after the outcome is recorded, so
    # that progress can be counted per worker.
    Column("claimed_by", String(100), nullable=True),
    # Set, in batches, just before the message may start to go out: a lost worker's
    # claimed rows without it are safe to queue again, rows with it become 'unknown'.
    Column("started_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("issue_id", "subscriber_id", name="uq_deliveries_issue_subscriber"),
    Index("ix_deliveries_status_next", "status", "next_attempt"),
    # What a claim walks: only the rows still to send, in id order (partial, so it stays
    # small however many deliveries are done).
    Index(
        "ix_deliveries_due",
        "id",
        "next_attempt",
        postgresql_where=text("status IN ('pending', 'deferred')"),
        sqlite_where=text("status IN ('pending', 'deferred')"),
    ),
    # Rows in flight, per worker: what lease expiry and recovery look up.
    Index(
        "ix_deliveries_sending",
        "claimed_by",
        postgresql_where=text("status = 'sending'"),
        sqlite_where=text("status = 'sending'"),
    ),
    # A complaint (ARF) names the original by the Message-ID we gave it.
    Index("ix_deliveries_message_id", "message_id"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("code", Integer, nullable=True),
    Column("text", Text, nullable=True),
    Index("ix_delivery_attempts_delivery", "delivery_id"),
)

schedule_state = Table(
    "schedule_state",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("paused", Boolean, nullable=False, default=False),
    Column("last_fire", UTCDateTime, nullable=True),  # the fire time last handled
    # The fire time a daemon is serving now, and until when its claim holds unless
    # renewed: another daemon never serves a claimed fire time while the claim is live.
    Column("claimed_fire", UTCDateTime, nullable=True),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("claimed_by", String(200), nullable=True),  # host and pid of the claimer
    Column("updated_at", UTCDateTime, nullable=False),
)

# Sending workers, one row per process run: its lease (renewed while it works; when it
# lapses the worker's claimed rows are settled by others) and its running counts.
workers = Table(
    "workers",
    metadata,
    Column("id", String(100), primary_key=True),  # ledger.new_worker_id()
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime, nullable=False),
    # Set when another process settled this worker's claims after its lease lapsed:
    # the worker, if it still runs, must stop (its renewals fail from then on).
    Column("expired", Boolean, nullable=False, default=False),
    Column("ended", UTCDateTime, nullable=True),
    Column("sent", Integer, nullable=False, default=0),
    Column("deferred", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("bounced", Integer, nullable=False, default=0),
    Column("unknown", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Index("ix_workers_lease", "ended", "lease_until"),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule", String(100), nullable=True),  # NULL for a manual CLI run
    Column("job", String(20), nullable=False),
    Column("fire_time", UTCDateTime, nullable=True),
    Column("started", UTCDateTime, nullable=False),
    Column("ended", UTCDateTime, nullable=True),
    Column("outcome", String(20), nullable=False),  # a models.RunOutcome value
    Column("counts", JSON, nullable=False, default=dict),
    Column("error", Text, nullable=True),
    Index("ix_job_runs_schedule_started", "schedule", "started"),
)

# Recent sign-up attempts for the abuse limits, shared by every process on the store:
# kind "ip" (a sign-up from a client address) or "mail" (a confirmation mail sent to an
# address). ``key`` is a sha256, never the address itself. Rows older than an hour
# (or ``resend_after``) are deleted by the purge.
signup_attempts = Table(
    "signup_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(10), nullable=False),
    Column("key", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_signup_attempts_kind_key_at", "kind", "key", "at"),
)

# Server secrets the store keeps (never config): e.g. "csrf", the key of form tokens.
site_secrets = Table(
    "site_secrets",
    metadata,
    Column("name", String(50), primary_key=True),
    Column("value", String(128), nullable=False),
)

# What bounce and complaint reports said, one row per (report, subscriber): the
# idempotency key, so a report processed twice changes nothing. ``delivery_id`` and
# ``issue_id`` are NULL for a suppression by hand (``subscribers suppress``).
feedback_events = Table(
    "feedback_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("delivery_id", Integer, ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True),
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="SET NULL"), nullable=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(20), nullable=False),  # a models.FeedbackKind value
    Column("status_code", String(20), nullable=True),  # "5.1.1"
    Column("diagnostic", Text, nullable=False, default=""),
    Column("report_id", String(255), nullable=False),  # the report's Message-ID or provider id
    Column("source", String(50), nullable=False),  # maildir | imap | webhook:ses | cli ...
    UniqueConstraint("report_id", "subscriber_id", name="uq_feedback_events_report_subscriber"),
    Index("ix_feedback_events_subscriber_at", "subscriber_id", "at"),
    Index("ix_feedback_events_issue", "issue_id"),
    Index("ix_feedback_events_at", "at"),
)

# Admin console sessions: ``id_hash`` is the sha256 of the cookie's session id (a leaked
# table gives no usable cookie); ``csrf`` is the session's form token; a session whose
# ``last_seen`` is older than the idle limit is dead, whatever the cookie says.
admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("username", String(32), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("client", String(100), nullable=False, default=""),
)

# Failed sign-ins and lock-outs, shared by every process on the store: kind "user" or
# "client" (a failure for that user name or client address, sha256 ``key``), or
# "lock-user"/"lock-client" (the moment the fifth failure locked it out).
admin_attempts = Table(
    "admin_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(20), nullable=False),
    Column("key", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_admin_attempts_kind_key_at", "kind", "key", "at"),
)

# What admins did in the console: who, when, what (action and detail), from where.
admin_audit = Table(
    "admin_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("username", String(32), nullable=False),
    Column("action", String(50), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("client", String(100), nullable=False, default=""),
    Index("ix_admin_audit_at", "at"),
)
