"""The admin console's state: server-side sessions, sign-in failure counters, the audit log.

Everything lives in the store, not in a process, so a sign-out, an idle expiry or a
lock-out holds for every process serving the same store (``publisher run`` and a
second ``serve``) and across restarts. Session ids and the keys of the failure
counters are stored as sha256 digests: a copy of the table yields no cookie and no
list of who tried to sign in from where.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, delete, func, select, update

from publisher.store.tables import admin_attempts, admin_audit, admin_sessions


@dataclass(frozen=True, slots=True)
class AdminSession:
    """A live console session: whose it is and the CSRF token its forms must carry."""

    username: str
    csrf: str
    created: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log: who did what, when, from where."""

    id: int
    at: datetime
    username: str
    action: str
    detail: str
    client: str


class AdminStore:
    """Sessions, failed sign-ins and lock-outs, and the audit log of the admin console."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- sessions ----------------------------------------------------------------------

    def create_session(self, id_hash: str, username: str, csrf: str, client: str, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                admin_sessions.insert().values(
                    id_hash=id_hash,
                    username=username,
                    csrf=csrf,
                    created=now,
                    last_seen=now,
                    client=client[:100],
                )
            )

    def session(self, id_hash: str, alive_after: datetime) -> AdminSession | None:
        """The session ``id_hash`` if it was seen after ``alive_after``; None otherwise."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(admin_sessions).where(
                    admin_sessions.c.id_hash == id_hash, admin_sessions.c.last_seen > alive_after
                )
            ).first()
        if row is None:
            return None
        return AdminSession(row.username, row.csrf, row.created, row.last_seen)

    def touch_session(self, id_hash: str, now: datetime) -> None:
        """Push the idle expiry back (the one write a GET may make)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(admin_sessions).where(admin_sessions.c.id_hash == id_hash).values(last_seen=now)
            )

    def delete_session(self, id_hash: str) -> bool:
        with self.engine.begin() as conn:
            return bool(
                conn.execute(delete(admin_sessions).where(admin_sessions.c.id_hash == id_hash)).rowcount
            )

    def delete_idle_sessions(self, idle_before: datetime) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(delete(admin_sessions).where(admin_sessions.c.last_seen <= idle_before)).rowcount
            )

    # -- failed sign-ins ---------------------------------------------------------------------

    def count_attempts(self, kind: str, key: str, since: datetime) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        admin_attempts.c.kind == kind,
                        admin_attempts.c.key == key,
                        admin_attempts.c.at > since,
                    )
                ).scalar_one()
            )

    def record_attempt(self, kind: str, key: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(admin_attempts.insert().values(kind=kind, key=key, at=at))

    def forget_attempts(self, kind: str, key: str) -> None:
        """A successful sign-in clears its user's failures (not its address's)."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(admin_attempts).where(admin_attempts.c.kind == kind, admin_attempts.c.key == key)
            )

    def purge_attempts(self, before: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(admin_attempts).where(admin_attempts.c.at < before))

    # -- audit log -----------------------------------------------------------------------------

    def audit(self, username: str, action: str, detail: str, client: str, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                admin_audit.insert().values(
                    at=at, username=username[:32], action=action[:50], detail=detail, client=client[:100]
                )
            )

    def audit_log(self, limit: int = 100, offset: int = 0) -> list[AuditEntry]:
        """The newest entries first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(admin_audit).order_by(admin_audit.c.id.desc()).limit(limit).offset(offset)
            ).all()
        return [AuditEntry(r.id, r.at, r.username, r.action, r.detail, r.client) for r in rows]

    def audit_mentioning(self, text: str, limit: int = 50) -> list[AuditEntry]:
        """The newest entries whose detail contains ``text`` (an address), newest first."""
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(admin_audit)
                .where(admin_audit.c.detail.like(pattern, escape="\\"))
                .order_by(admin_audit.c.id.desc())
                .limit(limit)
            ).all()
        return [AuditEntry(r.id, r.at, r.username, r.action, r.detail, r.client) for r in rows]

    def scrub_audit(self, text: str, replacement: str) -> int:
        """Replace ``text`` (a forgotten address) in every audit line's detail; lines changed."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(admin_audit)
                .where(admin_audit.c.detail.contains(text, autoescape=True))
                .values(detail=func.replace(admin_audit.c.detail, text, replacement))
            )
        return int(result.rowcount or 0)

    def audit_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(admin_audit)).scalar_one())
