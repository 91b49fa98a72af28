"""Who may use the admin console: passwords, sign-in limits, sessions, CSRF, the audit log.

Passwords are argon2id hashes read from the environment (``[admin] users`` names the
users, ``PUBLISHER_ADMIN_{USER}_HASH`` holds each hash), never from config.toml.

A sign-in that fails answers the same whichever part was wrong, and an unknown user
costs the same argon2 work as a known one, so the form tells nobody which names exist.
After :data:`LOCK_AFTER` failures for one user name or one client address within
:data:`LOCK_WINDOW`, that name or address is locked out for :data:`LOCK_WINDOW`; the
counters are rows in the store, so the limit holds across processes and restarts.

A session is a random id in a signed cookie; the store keeps only its sha256 with the
user, the session's CSRF token and when it was last used. It dies after
:data:`IDLE_LIMIT` without a request, when its user is no longer an enabled admin, at
sign-out (the row is deleted, so a copied cookie stops working too), and at the next
sign-in from the same browser (rotation).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from publisher.config import Settings
from publisher.errors import ConfigError
from publisher.store import Store
from publisher.store.admin import AdminSession, AuditEntry

__all__ = ["AdminSession", "AuditEntry", "LoginOutcome", "LoginResult"]

log = logging.getLogger("publisher.admin")

IDLE_LIMIT = timedelta(hours=12)
LOCK_AFTER = 5
LOCK_WINDOW = timedelta(minutes=15)
#: A GET pushes the idle expiry back at most this often (one write per minute, not per page).
TOUCH_EVERY = timedelta(minutes=1)
_SECRET = "admin-session"


class LoginOutcome(StrEnum):
    SIGNED_IN = "signed-in"
    WRONG = "wrong"  # the same for an unknown user, a wrong password or a user without a hash
    LOCKED = "locked"  # too many failures for this user name or client address


@dataclass(frozen=True, slots=True)
class LoginResult:
    outcome: LoginOutcome
    username: str = ""
    cookie: str = ""  # the new session's cookie value when signed in


def _hasher() -> PasswordHasher:
    return PasswordHasher(type=Type.ID)


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` for ``PUBLISHER_ADMIN_{USER}_HASH``."""
    if not password:
        raise ConfigError("the password is empty; choose one of at least 12 characters")
    if len(password) < 12:
        raise ConfigError("the password is shorter than 12 characters; choose a longer one")
    return _hasher().hash(password)


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when the user is unknown, so timing says nothing."""
    return _hasher().hash(secrets.token_hex(16))


def _verify(stored: str | None, password: str, username: str) -> bool:
    if stored is not None and not stored.startswith("$argon2id$"):
        log.error(
            "admin user %r: the hash in the environment is not an argon2id hash; "
            "make one with `publisher admin hash-password`",
            username,
        )
        stored = None
    try:
        _hasher().verify(stored or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored is not None


def _key(value: str) -> str:
    return hashlib.sha256(value.casefold().encode("utf-8")).hexdigest()


def _locked(store: Store, kind: str, key: str, now: datetime) -> bool:
    return store.admin.count_attempts(f"lock-{kind}", key, now - LOCK_WINDOW) > 0


def _fail(store: Store, kind: str, key: str, now: datetime) -> None:
    store.admin.record_attempt(kind, key, now)
    if store.admin.count_attempts(kind, key, now - LOCK_WINDOW) >= LOCK_AFTER and not _locked(
        store, kind, key, now
    ):
        store.admin.record_attempt(f"lock-{kind}", key, now)


def enabled(settings: Settings) -> bool:
    """Whether anyone can sign in: a listed user has a hash in the environment."""
    return bool(settings.admin.enabled_users)


def how_to_enable(settings: Settings) -> str:
    """The log line that says why the console is off and how to turn it on."""
    if not settings.admin.users:
        return (
            "admin console disabled (/admin/ answers 404): no [admin] users; add "
            '[admin] users = ["alice"] to config.toml and set PUBLISHER_ADMIN_ALICE_HASH to the '
            "output of `publisher admin hash-password`"
        )
    names = ", ".join(settings.admin.hash_env(u) for u in settings.admin.users)
    return (
        f"admin console disabled (/admin/ answers 404): none of {names} is set; set it to the "
        "output of `publisher admin hash-password` and restart"
    )


def sign_in(
    settings: Settings,
    store: Store,
    now: datetime,
    username: str,
    password: str,
    client: str,
    old_cookie: str,
) -> LoginResult:
    """Check a sign-in; on success start a new session (ending ``old_cookie``'s)."""
    # Counted under the name as it is matched, so " Alice " and "alice" share one counter.
    wanted = username.strip().lower()
    user_key, client_key = _key(wanted), _key(client)
    if _locked(store, "user", user_key, now) or _locked(store, "client", client_key, now):
        return LoginResult(LoginOutcome.LOCKED)
    name = wanted if wanted in settings.admin.users else ""
    if not _verify(settings.admin.password_hash(name) if name else None, password, name):
        _fail(store, "user", user_key, now)
        _fail(store, "client", client_key, now)
        store.admin.purge_attempts(now - 2 * LOCK_WINDOW)
        return LoginResult(LoginOutcome.WRONG, username=name)
    store.admin.forget_attempts("user", user_key)
    if old_cookie:
        sign_out(store, old_cookie)
    store.admin.delete_idle_sessions(now - IDLE_LIMIT)
    session_id = secrets.token_urlsafe(32)
    store.admin.create_session(_id_hash(session_id), name, secrets.token_urlsafe(32), client, now)
    return LoginResult(
        LoginOutcome.SIGNED_IN, username=name, cookie=f"{session_id}.{_sign(store, session_id)}"
    )


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def _sign(store: Store, session_id: str) -> str:
    key = store.signups.site_secret(_SECRET).encode("ascii")
    return hmac.new(key, session_id.encode("ascii"), hashlib.sha256).hexdigest()[:32]


def _session_id(store: Store, cookie: str) -> str | None:
    """The session id in ``cookie`` if its signature is ours; None for anything else."""
    session_id, _, mac = cookie.partition(".")
    if not session_id or len(cookie) > 200 or not session_id.isascii() or not mac.isascii():
        return None
    return session_id if hmac.compare_digest(mac, _sign(store, session_id)) else None


def session(settings: Settings, store: Store, cookie: str, now: datetime) -> AdminSession | None:
    """The live session of ``cookie``, its idle expiry pushed back; None when there is none.

    A session of a user who can no longer sign in (taken out of ``[admin] users``, or
    whose hash is gone from the environment) is none: revoking an admin takes effect at
    the next reload, not when their session would have gone idle.
    """
    session_id = _session_id(store, cookie) if cookie else None
    if session_id is None:
        return None
    id_hash = _id_hash(session_id)
    found = store.admin.session(id_hash, now - IDLE_LIMIT)
    if found is None or found.username not in settings.admin.enabled_users:
        return None
    if now - found.last_seen >= TOUCH_EVERY:
        store.admin.touch_session(id_hash, now)
    return found


def sign_out(store: Store, cookie: str) -> bool:
    """End the session of ``cookie`` in the store; False if there was none."""
    session_id = _session_id(store, cookie)
    return session_id is not None and store.admin.delete_session(_id_hash(session_id))


def csrf_ok(found: AdminSession, token: str) -> bool:
    """Whether a form's ``csrf_token`` is this session's."""
    return bool(token) and hmac.compare_digest(token.encode("utf-8"), found.csrf.encode("utf-8"))
