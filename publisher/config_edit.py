"""Changing a schedule's trigger and time zone in config.toml, as the admin console does.

config.toml stays the one source of truth: the console never keeps a schedule of its
own, it edits the file. So an edit must be one the admin could have typed: comments,
key order and layout are kept (tomlkit edits the parsed document, not a dump of the
settings), the result is validated by the very code that loads config.toml
(:func:`publisher.config.settings_from_dict`), and it is written atomically (a
temporary file in the same folder, then a rename), so a crash or a concurrent reader
never sees half a file. An edit is planned first (the new text, its problems and the
next fire times, shown before saving) and saved only if the file still has the bytes
the plan was made from: two admins, or an admin and a text editor, cannot overwrite
each other's change unseen.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import Item

from publisher.config import Settings, settings_from_dict
from publisher.errors import ConfigError
from publisher.periods import next_fire_times, schedule_trigger

TRIGGER_KINDS = ("cron", "every")
PREVIEW_COUNT = 5
#: One save at a time in this process: the "file unchanged since the preview" check and
#: the write must not interleave, or two admins saving at once could both pass the check.
_SAVING = threading.Lock()


@dataclass(frozen=True, slots=True)
class ScheduleEdit:
    """A planned change of one schedule: what config.toml would say and what it would do."""

    name: str
    kind: str  # "cron" or "every"
    value: str
    timezone: str  # empty: the site's zone
    zone: str  # the zone the schedule would run in
    problems: list[str] = field(default_factory=list)
    next_runs: list[datetime] = field(default_factory=list)  # in ``zone``
    text: str = ""  # the whole new config.toml
    base_digest: str = ""  # sha256 of the file the plan was made from
    changed: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _config_path(settings: Settings) -> Path:
    if settings.path is None:
        raise ConfigError("this configuration was not read from a file, so there is no config.toml to edit")
    return settings.path


def _set(table: Any, key: str, value: str) -> None:
    """Set ``key`` keeping its line's comment (and the comment's column when it fits)."""
    new: Item = tomlkit.string(value)
    old = table.item(key) if key in table else None
    if old is not None and old.trivia.comment:
        width = len(old.as_string()) + len(old.trivia.comment_ws)
        new.trivia.comment_ws = " " * max(1, width - len(new.as_string()))
        new.trivia.comment = old.trivia.comment
        new.trivia.indent = old.trivia.indent
    table[key] = new


def _clean(value: str, what: str, problems: list[str]) -> str:
    value = value.strip()
    if len(value) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in value):
        problems.append(f"{what}: at most 200 characters on one line, without control characters")
    return value


def plan_schedule_edit(
    settings: Settings, name: str, kind: str, value: str, timezone: str, now: datetime
) -> ScheduleEdit:
    """What saving ``name`` with ``kind = value`` and ``timezone`` would write and do; nothing written.

    ``problems`` holds what config loading would say of the new file (key paths and
    all); an empty ``timezone`` removes the key, so the schedule follows the site's zone.
    """
    path = _config_path(settings)
    raw = path.read_bytes()
    problems: list[str] = []
    value = _clean(value, f"schedules.{name}.{kind}", problems)
    timezone = _clean(timezone, f"schedules.{name}.timezone", problems)

    def refused(found: list[str], text: str = "") -> ScheduleEdit:
        return ScheduleEdit(
            name, kind, value, timezone, zone="", problems=found, text=text, base_digest=_digest(raw)
        )

    if kind not in TRIGGER_KINDS:
        problems.append(f"schedules.{name}: the trigger is 'cron' or 'every', not {kind!r}")
    if not value:
        example = "'0 9 * * mon'" if kind == "cron" else "'15m'"
        problems.append(f"schedules.{name}.{kind}: empty; write one, e.g. {example}")
    if problems:
        return refused(problems)
    try:
        doc = tomlkit.parse(raw.decode("utf-8"))
        table = doc["schedules"][name]
    except (TOMLKitError, UnicodeDecodeError, KeyError) as e:
        raise ConfigError(f"{path}: no [schedules.{name}] table to edit ({e})") from e
    _set(table, kind, value)
    other = "every" if kind == "cron" else "cron"
    if other in table:
        del table[other]
    if timezone:
        _set(table, "timezone", timezone)
    elif "timezone" in table:
        del table["timezone"]
    text = tomlkit.dumps(doc)
    try:
        new_settings = settings_from_dict(tomllib.loads(text), path)
    except ConfigError as e:
        return refused(e.problems, text)
    except tomllib.TOMLDecodeError as e:  # tomlkit escapes strings, so this means a tomlkit bug
        return refused([f"{path}: {e}"])
    zone = new_settings.schedule_timezone(name)
    runs = [
        t.astimezone(zone) for t in next_fire_times(schedule_trigger(new_settings, name), now, PREVIEW_COUNT)
    ]
    return ScheduleEdit(
        name,
        kind,
        value,
        timezone,
        zone=zone.key,
        next_runs=runs,
        text=text,
        base_digest=_digest(raw),
        changed=text.encode("utf-8") != raw,
    )


def save_schedule_edit(
    settings: Settings, name: str, kind: str, value: str, timezone: str, base_digest: str, now: datetime
) -> ScheduleEdit:
    """Write the planned edit to config.toml atomically; ConfigError when it is invalid or stale.

    Stale: the file changed since the plan shown to the admin (``base_digest``), so the
    admin has not seen what would be saved; nothing is written and they review again.
    """
    with _SAVING:
        edit = plan_schedule_edit(settings, name, kind, value, timezone, now)
        if edit.base_digest != base_digest:
            raise ConfigError(
                f"{settings.path}: changed since the preview was shown; review the change again before saving"
            )
        if not edit.ok:
            raise ConfigError(
                f"schedules.{name}: the change is not valid; nothing was written", edit.problems
            )
        if edit.changed:
            path = _config_path(settings)
            try:
                write_atomically(path, edit.text.encode("utf-8"))
            except OSError as e:
                raise ConfigError(
                    f"{path}: cannot write it ({e.strerror or e}); this process needs write access "
                    "to the file's folder"
                ) from e
        return edit


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one rename, keeping its permission bits."""
    mode = path.stat().st_mode & 0o7777
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
