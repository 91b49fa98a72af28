"""Files an admin uploaded to the console, held on the server until they are used or expire.

Why hold them here: a subscriber import is checked first ("import 4,812 rows, 3 rejected:
commit?") and committed by a second request. Sending the file back from the browser
would let the commit import something other than what was checked; so the checked
bytes stay on the server, under a random id, bound to the list and the admin who
uploaded them, and the commit imports exactly those bytes.

Each upload is a folder ``{root}/{id}/`` holding the file (under a cleaned copy of its
name, which errors and the consent record quote) and :data:`META`. Folders older than
:data:`KEEP` are deleted whenever a new upload is held.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from publisher.errors import SubscriberError

KEEP = timedelta(hours=1)
#: The upload's record beside it; a leading dot, which :func:`clean_name` never leaves, so
#: an uploaded file named ``meta.json`` cannot overwrite it.
META = ".meta.json"
_ID = re.compile(r"^[0-9a-f]{32}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class HeldUpload:
    """One held file: where it is, what it is for, who uploaded it and when."""

    id: str
    path: Path
    list_slug: str
    username: str
    at: datetime


def clean_name(name: str) -> str:
    """A file name safe on disk and in messages: ``my list (1).csv`` -> ``my_list_1_.csv``."""
    base = _UNSAFE.sub("_", Path(name.replace("\\", "/")).name).strip("._")[:60]
    return base if base else "upload.csv"


class HeldUploads:
    """The folder of held uploads (``var/uploads`` beside config.toml)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def hold(self, data: bytes, name: str, list_slug: str, username: str, now: datetime) -> HeldUpload:
        """Keep ``data`` under a new random id; older uploads past :data:`KEEP` are deleted."""
        self.purge(now)
        upload_id = secrets.token_hex(16)
        folder = self.root / upload_id
        folder.mkdir(parents=True, mode=0o700)
        path = folder / clean_name(name)
        path.write_bytes(data)
        path.chmod(0o600)
        meta = {"list": list_slug, "user": username, "at": now.isoformat(), "name": path.name}
        (folder / META).write_text(json.dumps(meta), encoding="utf-8")
        return HeldUpload(upload_id, path, list_slug, username, now)

    def get(self, upload_id: str, username: str, now: datetime) -> HeldUpload:
        """The upload ``upload_id`` of ``username``; SubscriberError if unknown, expired or another's."""
        gone = SubscriberError(
            "", "this upload is unknown or expired (uploads are kept one hour); upload the file again"
        )
        if not _ID.match(upload_id):
            raise gone
        folder = self.root / upload_id
        try:
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
            at = datetime.fromisoformat(meta["at"])
            held = HeldUpload(upload_id, folder / meta["name"], meta["list"], meta["user"], at)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise gone from e
        if held.username != username or now - at > KEEP:
            raise gone
        return held

    def drop(self, upload_id: str) -> None:
        if _ID.match(upload_id):
            shutil.rmtree(self.root / upload_id, ignore_errors=True)

    def purge(self, now: datetime) -> None:
        """Delete the uploads past :data:`KEEP`.

        A folder whose record cannot be read yet may be one another request is
        holding right now (made, its record not yet written): it goes only once the folder
        itself is older than :data:`KEEP`.
        """
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if not _ID.match(folder.name):
                continue
            try:
                meta = json.loads((folder / META).read_text(encoding="utf-8"))
                at = datetime.fromisoformat(meta["at"])
            except (OSError, ValueError, KeyError, TypeError):
                try:
                    at = datetime.fromtimestamp(folder.stat().st_mtime, now.tzinfo)
                except OSError:
                    continue
            if now - at > KEEP:
                shutil.rmtree(folder, ignore_errors=True)
