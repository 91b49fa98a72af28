"""The list of files a build wrote, so the next build can delete what no longer belongs;
and the digest of the configuration and templates it wrote them from, so a changed one
is rebuilt.

A category, format or language removed from the config, or an archive page that no
longer exists (fewer items), leaves files behind that readers would keep fetching. The
build records every path it produced in :data:`MANIFEST_FILE`; the next build deletes
the paths recorded last time and not produced this time, and nothing else: a file an
admin put in the output folder was never in a manifest, so it is never touched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from publisher.errors import PublisherError
from publisher.templating import templates_digest

if TYPE_CHECKING:
    from publisher.config import Settings

MANIFEST_FILE = ".build-manifest.json"


def load_manifest(out: Path, fallback: Iterable[str] = ()) -> set[str]:
    """The paths the previous build wrote; ``fallback`` when no manifest exists yet.

    A build from before manifests existed left only its render state, whose keys are
    the feed paths it wrote: the caller passes those, so their leftovers go too.
    """
    try:
        data = json.loads((out / MANIFEST_FILE).read_bytes())
    except FileNotFoundError:
        return set(fallback)
    except (OSError, ValueError):
        return set()  # unreadable: delete nothing rather than guess
    files = data.get("files") if isinstance(data, dict) else None
    # Entries are checked by prune, on the few left over, not here on thousands each build.
    return {p for p in files if isinstance(p, str)} if isinstance(files, list) else set()


def save_manifest(out: Path, paths: Iterable[str]) -> bytes:
    """The manifest's bytes for ``paths`` (written by the caller with write_if_changed)."""
    # One path a line, for a person reading it; no indent keeps json's fast C encoder.
    return ('{"files": [\n' + ",\n".join(map(json.dumps, sorted(set(paths)))) + "\n]}\n").encode()


def prune(
    out: Path, previous: set[str], current: set[str], owned: Callable[[str], bool] = lambda rel: True
) -> list[Path]:
    """Delete the files of ``previous`` not in ``current``; then their emptied folders.

    The manifest is a file in a folder others can write to, so an entry is only a
    claim: a path is deleted only if ``owned`` says the build writes paths of that
    shape, and only if it leads to a file inside ``out`` without passing a symlink (a
    folder linked to elsewhere would otherwise let a listed path reach outside).
    Checked here, on the few leftovers, not on every entry as the manifest is read.
    """
    deleted: list[Path] = []
    real_out = out.resolve()
    for rel in sorted(previous - current):
        if not _safe(rel) or not owned(rel):
            continue
        path = out / rel
        try:
            if not path.is_file() or path.resolve() != real_out / rel:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise PublisherError(
                f"cannot delete {path}, which the build no longer writes: {e.strerror or e}"
            ) from e
        deleted.append(path)
        parent = path.parent
        while parent != out and out in parent.parents:
            try:
                parent.rmdir()  # only succeeds when empty: another file keeps the folder
            except OSError:
                break
            parent = parent.parent
    return deleted


def _safe(rel: str) -> bool:
    """A manifest entry is a plain relative path inside the output folder."""
    return bool(rel) and not rel.startswith("/") and "\x00" not in rel and ".." not in rel.split("/")


#: The digest of the configuration and templates the last build of this output folder
#: wrote from (:func:`build_digest`).
CONFIG_DIGEST_FILE = ".build-config"

#: Settings that never shape a file under ``feeds.output_dir``: changing one (a schedule
#: edited in the console, a relay, the web server's timeouts) needs no rebuild. Storage
#: is left out as well, so no digest of a URL that may hold a password is written.
_NOT_PUBLISHED = frozenset(
    {"storage", "smtp", "delivery", "web", "outbox", "dkim", "schedules", "scheduler", "bounces", "admin"}
)


def config_digest(settings: Settings) -> str:
    """A digest of every setting a build reads: site, feeds, categories, lists (their
    ``public`` flag, names, archive and templates), sources, items, templates, sign-up.

    Listed by exclusion (:data:`_NOT_PUBLISHED`), so a key added later counts as
    published until someone decides otherwise: a needless rebuild costs a fraction of a
    second, a missed one leaves a private list on the web.
    """
    data = settings.model_dump_json(exclude=set(_NOT_PUBLISHED))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def build_digest(settings: Settings, templates: Iterable[str]) -> str:
    """A digest of what a build writes from besides the items: the settings it reads
    (:func:`config_digest`) and the template files rendering ``templates`` reads
    (:func:`publisher.templating.templates_digest`), so editing a page template is
    rebuilt like editing config.toml. About 0.3 ms once the templates were parsed."""
    both = f"{config_digest(settings)}\n{templates_digest(settings, templates)}"
    return hashlib.sha256(both.encode("ascii")).hexdigest()


def built_config(out: Path) -> str | None:
    """The digest the last build of ``out`` recorded; None if none (or unreadable)."""
    try:
        return (out / CONFIG_DIGEST_FILE).read_text(encoding="ascii").strip() or None
    except (OSError, ValueError):
        return None
