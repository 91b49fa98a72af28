"""Subscriber import on PostgreSQL: COPY the file into a temporary table, then set-based SQL.

Why: the batched path (:meth:`publisher.store.subscribers.SubscriberStore.import_rows`
on SQLite) sends a thousand rows of parameters per statement and reads back what is
stored for each batch; on PostgreSQL every one of those rows crosses the wire twice
and is planned in Python. Here the rows cross once, as ``COPY ... FROM STDIN`` (psycopg
escapes tabs, newlines and backslashes in the text format), and PostgreSQL applies the
rules of :mod:`publisher.store.subscriber_import` to all of them at once:

1. ``import_file`` (temporary, dropped at commit or rollback) gets every row;
2. ``import_plan`` joins it to what is stored and says, per row, whether the address
   is new, kept suppressed (suppressed or forgotten) or on file, and what its name,
   language and attributes become (the file's non-empty values win, attributes merge);
3. four statements write: new subscribers with their subscriptions and events (one
   ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` chained by ``RETURNING``), changed
   details, status changes of addresses on file with their events, and the counts.

The outcome is the one :func:`publisher.store.subscriber_import.plan_batch` computes;
``tests/test_store_subscribers.py`` runs the same cases on both paths and compares
whole stores. An update of a subscription only happens if its status is still the one
planned, so a sign-up or unsubscribe that lands during the import is never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, text

from publisher.models import SUPPRESSED, Consent
from publisher.store.subscriber_import import BatchOutcome, ImportRow
from publisher.store.tables import UTCDateTime

Progress = Callable[[int, int], None]

_SUPPRESSED = ", ".join(f"'{s.value}'" for s in sorted(SUPPRESSED))

# A stored subscriber's attributes as jsonb ({t}: the subscribers row), ``{{}}`` if not an object.
_STORED_ATTRIBUTES = (
    "(CASE WHEN json_typeof({t}.attributes) = 'object' THEN {t}.attributes::jsonb ELSE '{{}}'::jsonb END)"
)

_CREATE_FILE = """
CREATE TEMPORARY TABLE import_file (
    ord integer NOT NULL,
    email_hash text NOT NULL,
    email text NOT NULL,
    name text,
    language text,
    attributes json NOT NULL,
    status text NOT NULL,
    secret text NOT NULL
) ON COMMIT DROP
"""

_COPY = "COPY import_file (ord, email_hash, email, name, language, attributes, status, secret) FROM STDIN"

# What each row does, one narrow row per file row in file order (the file's values
# stay in ``import_file``). ``kind``: new (not stored), kept (suppressed on the list,
# or forgotten: nothing changes) or on_file; ``changed``: its details differ from the
# stored ones (attributes are compared as jsonb only when the row has some). A new
# address takes its id from the table's sequence here, in file order, so that its
# subscription and event are written straight from this table.
_PLAN = f"""
CREATE TEMPORARY TABLE import_plan ON COMMIT DROP AS
SELECT x.*, CASE WHEN x.kind = 'new' THEN nextval({{sequence}}::regclass) END AS new_id
FROM (
    SELECT f.ord,
           f.status,
           f.status IN ({_SUPPRESSED}) AS suppresses,
           s.id AS sid,
           CASE WHEN s.id IS NULL THEN 'new'
                WHEN s.email IS NULL OR sub.status IN ({_SUPPRESSED}) THEN 'kept'
                ELSE 'on_file' END AS kind,
           sub.status AS old_status,
           coalesce(f.name, s.name) IS DISTINCT FROM s.name
             OR coalesce(f.language, s.language) IS DISTINCT FROM s.language
             OR (f.attributes::text <> '{{}}' AND {_STORED_ATTRIBUTES.format(t="s")} || f.attributes::jsonb
                 IS DISTINCT FROM {_STORED_ATTRIBUTES.format(t="s")}) AS changed
    FROM import_file f
    LEFT JOIN subscribers s ON s.email_hash = f.email_hash
    LEFT JOIN subscriptions sub ON sub.subscriber_id = s.id AND sub.list_slug = :slug
    ORDER BY f.ord
) x
"""

_COUNTS = """
SELECT
  count(*) FILTER (WHERE NOT suppresses AND (kind = 'new' OR (kind = 'on_file' AND old_status IS NULL))),
  count(*) FILTER (WHERE kind = 'on_file' AND NOT suppresses AND old_status IS NOT NULL
                   AND (old_status <> 'confirmed' OR changed)),
  count(*) FILTER (WHERE kind = 'on_file' AND NOT suppresses AND old_status = 'confirmed' AND NOT changed),
  count(*) FILTER (WHERE kind = 'kept' OR suppresses),
  count(*) FILTER (WHERE kind = 'new'),
  count(*) FILTER (WHERE kind = 'on_file' AND (old_status IS NULL OR changed
                   OR old_status <> 'confirmed' OR suppresses))
FROM import_plan
"""

_INSERT_SUBSCRIBERS = """
INSERT INTO subscribers (id, email, email_hash, name, language, secret, attributes, created)
SELECT p.new_id, f.email, f.email_hash, coalesce(f.name, ''), coalesce(f.language, :default_language),
       f.secret, f.attributes, :at
FROM import_plan p JOIN import_file f USING (ord)
WHERE p.kind = 'new' ORDER BY p.new_id
"""

# Rows that get a subscription they did not have: new addresses and addresses on file
# not on this list yet. Consent is recorded unless the row is a suppression.
_SUBSCRIBING = "(kind = 'new' OR (kind = 'on_file' AND old_status IS NULL))"

_INSERT_SUBSCRIPTIONS = f"""
INSERT INTO subscriptions (subscriber_id, list_slug, status, consent_at, consent_method,
                           consent_source, updated_at)
SELECT coalesce(new_id, sid), :slug, status,
       CASE WHEN suppresses THEN NULL ELSE :at END,
       CASE WHEN suppresses THEN NULL ELSE :method END,
       CASE WHEN suppresses THEN NULL ELSE :source END,
       :at
FROM import_plan WHERE {_SUBSCRIBING}
"""

_INSERT_SUBSCRIBING_EVENTS = f"""
INSERT INTO subscription_events (subscriber_id, list_slug, at, event, detail)
SELECT coalesce(new_id, sid), :slug, :at, status, :detail FROM import_plan WHERE {_SUBSCRIBING}
"""

# The merged attributes keep the stored keys' order, then the file's new keys, as
# ``{**stored, **row}`` does on SQLite (the console lists them in that order).
_UPDATE_DETAILS = """
UPDATE subscribers s
SET name = coalesce(f.name, s.name), language = coalesce(f.language, s.language),
    attributes = (
        SELECT coalesce(json_object_agg(m.key, m.value ORDER BY m.src, m.n), '{}'::json) FROM (
            SELECT o.key, coalesce(r.value, o.value) AS value, 0 AS src, o.n
            FROM json_each(CASE WHEN json_typeof(s.attributes) = 'object'
                                THEN s.attributes ELSE '{}'::json END) WITH ORDINALITY o(key, value, n)
            LEFT JOIN json_each(f.attributes) r ON r.key = o.key
            UNION ALL
            SELECT r.key, r.value, 1, r.n FROM json_each(f.attributes) WITH ORDINALITY r(key, value, n)
            WHERE json_typeof(s.attributes) <> 'object' OR NOT (s.attributes::jsonb ? r.key)
        ) m
    )
FROM import_plan p JOIN import_file f USING (ord)
WHERE s.id = p.sid AND p.kind = 'on_file' AND p.changed
"""

# A subscription on file changes unless it is confirmed and stays so; only if its status
# is still the planned one (a click that landed meanwhile wins), and then with its event.
_CHANGE_STATUS = """
WITH changed AS (
    UPDATE subscriptions sub
    SET status = p.status, updated_at = :at,
        consent_at = CASE WHEN p.suppresses THEN sub.consent_at ELSE :at END,
        consent_method = CASE WHEN p.suppresses THEN sub.consent_method ELSE :method END,
        consent_source = CASE WHEN p.suppresses THEN sub.consent_source ELSE :source END
    FROM import_plan p
    WHERE sub.subscriber_id = p.sid AND sub.list_slug = :slug AND p.kind = 'on_file'
      AND p.old_status IS NOT NULL AND (p.old_status <> 'confirmed' OR p.suppresses)
      AND sub.status = p.old_status
    RETURNING sub.subscriber_id, sub.status, p.ord
)
INSERT INTO subscription_events (subscriber_id, list_slug, at, event, detail)
SELECT subscriber_id, :slug, :at, status, :detail FROM changed ORDER BY ord
"""


def import_by_copy(
    conn: Connection,
    list_slug: str,
    rows: Sequence[ImportRow],
    consent: Consent,
    default_language: str,
    secrets: Sequence[str],
    *,
    progress: Progress | None = None,
    progress_every: int = 1000,
) -> BatchOutcome:
    """Apply ``rows`` inside the caller's transaction on ``conn`` (PostgreSQL only).

    ``secrets`` holds one fresh secret per row (only new addresses keep theirs).
    ``progress(done, total)`` is called every ``progress_every`` rows as they are
    copied, and with ``(total, total)`` once everything is written.
    """
    total = len(rows)
    if progress:
        progress(0, total)
    conn.execute(text("SET LOCAL work_mem = '128MB'"))  # the plan's sorts and joins, in memory
    # Each statement below runs once over the whole file: compiling it to machine code
    # (PostgreSQL's JIT, on above a cost most of them reach) costs 0.2 s and saves nothing.
    conn.execute(text("SET LOCAL jit = off"))
    conn.execute(text(_CREATE_FILE))
    raw: Any = conn.connection.driver_connection  # psycopg.Connection, same transaction
    with raw.cursor() as cursor, cursor.copy(_COPY) as copy:
        for n, (row, secret) in enumerate(zip(rows, secrets, strict=True), start=1):
            copy.write_row(
                (
                    n,
                    row.hash,
                    row.email,
                    row.name,
                    row.language,
                    json.dumps(row.attributes, ensure_ascii=False),
                    row.status.value,
                    secret,
                )
            )
            if progress and n % progress_every == 0 and n < total:
                progress(n, total)
    # The sequence's name as a constant: pg_get_serial_sequence() in the statement would
    # look it up again for every row.
    sequence = conn.execute(text("SELECT pg_get_serial_sequence('subscribers', 'id')")).scalar_one()
    plan = _PLAN.replace("{sequence}", "'" + str(sequence).replace("'", "''") + "'")
    conn.execute(text(plan), {"slug": list_slug})
    added, updated, unchanged, kept, new, on_file = conn.execute(text(_COUNTS)).one()
    params = {
        "slug": list_slug,
        "at": consent.at,
        "method": consent.method,
        "source": consent.source,
        "detail": consent.detail,
        "default_language": default_language,
    }
    at = bindparam("at", type_=UTCDateTime())
    if new:
        conn.execute(text(_INSERT_SUBSCRIBERS).bindparams(at), params)
    if added + kept:  # some rows subscribe (confirmed or as a suppression)
        for statement in (_INSERT_SUBSCRIPTIONS, _INSERT_SUBSCRIBING_EVENTS):
            conn.execute(text(statement).bindparams(at), params)
    if on_file:  # some addresses on file change their details or status
        conn.execute(text(_UPDATE_DETAILS))
        conn.execute(text(_CHANGE_STATUS).bindparams(at), params)
    if progress:
        progress(total, total)
    return BatchOutcome(added=added, updated=updated, unchanged=unchanged, suppressed_kept=kept)
