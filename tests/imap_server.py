"""A real IMAP server on loopback for tests: Debian's Dovecot with a throw-away config.

The IMAP bounce mailbox is only trustworthy when tested against a server that really
speaks IMAP (capabilities, UIDs, MOVE or COPY + EXPUNGE, folder creation, failed
logins), so :class:`Dovecot` starts ``/usr/sbin/dovecot -F`` with a config written to a
temporary folder: its own ports on 127.0.0.1 (plain/STARTTLS and implicit TLS), plain
authentication allowed, one user from a passwd-file, mail in a Maildir under the same
folder. Nothing of the machine's own Dovecot config or service is used or touched.

``move=False`` removes MOVE from the advertised capabilities (the server still knows the
command, a client must not use it), so the COPY + \\Deleted + EXPUNGE path of a client
is exercised by the same server.

Dovecot comes from ``make system-deps`` (package ``dovecot-imapd``). When it is missing
the fixture skips locally and fails in CI (``CI=true``): a skipped check is not a pass.

The marker PYTEST_DONT_REWRITE keeps pytest from warning that this module was imported
before it could rewrite its asserts.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
from imapclient import IMAPClient

from tests.smtp_server import TlsFiles, free_port

DOVECOT = Path("/usr/sbin/dovecot")
USERNAME = "bounces"
PASSWORD = "imap-s3cret"
IN_CI = os.environ.get("CI", "").lower() == "true"
# The capabilities Dovecot 2.3 advertises after login, less MOVE.
_WITHOUT_MOVE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
    "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
    "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
    "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY SPECIAL-USE"
)


def require_dovecot() -> None:
    """Skip (locally) or fail (in CI) when Dovecot is not installed."""
    if DOVECOT.exists():
        return
    msg = f"{DOVECOT} not found: run `make system-deps` (installs Debian's dovecot-imapd)"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


class Dovecot:
    """One Dovecot master process with a throw-away config; stop it with :meth:`stop`."""

    def __init__(self, tls: TlsFiles | None = None, *, move: bool = True) -> None:
        # Not tmp_path: Dovecot's unix sockets live under base_dir, and a socket path is
        # limited to 107 bytes; pytest's folders are long and private (mode 0700).
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.tls = tls
        self.move = move
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _mail_user(self) -> tuple[int, int]:
        """Dovecot never accesses mail as root: as root, use ``nobody``; else ourselves."""
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            return nobody.pw_uid, nobody.pw_gid
        return os.geteuid(), os.getegid()

    def _write_config(self) -> None:
        uid, gid = self._mail_user()
        mail = self.root / "mail"
        for folder in ("run", "state", "mail"):
            (self.root / folder).mkdir()
        if os.geteuid() == 0:
            os.chown(mail, uid, gid)
        (self.root / "passwd").write_text(f"{USERNAME}:{{PLAIN}}{PASSWORD}\n")
        ssl = "no"
        if self.tls:
            ssl = f"yes\nssl_cert = <{self.tls.cert}\nssl_key = <{self.tls.key}"
        unprivileged = ""
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid()).pw_name
            unprivileged = f"default_internal_user = {me}\ndefault_login_user = {me}\n"
        capability = "" if self.move else f"imap_capability = {_WITHOUT_MOVE}\n"
        (self.root / "dovecot.conf").write_text(
            f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {self.root}/run
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
instance_name = test-{self.port}
{unprivileged}ssl = {ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{mail}/%u
first_valid_uid = 1
{capability}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
}}
service anvil {{
  chroot =
}}
"""
        )

    def start(self) -> Dovecot:
        require_dovecot()
        self._process = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"* OK"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not start: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- what a test does as the mailbox's other user ------------------------------

    def client(self) -> IMAPClient:
        """A logged-in plain connection, to put reports in and look at folders."""
        client = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=10)
        client.login(USERNAME, PASSWORD)
        return client

    def append(self, raw: bytes, folder: str = "INBOX", *, seen: bool = False) -> None:
        """Deliver ``raw`` into ``folder`` the way an MDA or another client would."""
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, flags=[b"\\Seen"] if seen else [])

    def folders(self) -> dict[str, list[tuple[bytes, frozenset[bytes]]]]:
        """Every folder's messages (Message-ID header, flags), none marked read by looking."""
        found: dict[str, list[tuple[bytes, frozenset[bytes]]]] = {}
        with self.client() as client:
            for _flags, _sep, name in client.list_folders():
                client.select_folder(name, readonly=True)
                uids = client.search("ALL")
                data = client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]) if uids else {}
                found[name] = sorted(
                    (
                        bytes(d[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]).split(b":", 1)[-1].strip(),
                        frozenset(d[b"FLAGS"]),
                    )
                    for d in data.values()
                )
        return found


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A fresh Dovecot (plain IMAP, MOVE advertised), stopped and deleted after the test."""
    with Dovecot() as server:
        yield server
