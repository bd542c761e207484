"""iSCSI exports through tgt (Cinder's TgtAdm): one target per volume, LUN 1, CHAP.

The data path is a member object of the driver (Cinder's design rule): the LVM driver owns the
control path and hands this helper a block device (or, in tests, a file) to export.

Each target's definition lives in ``<volumes_dir>/<volume name>`` (mode 0600, because it holds
the CHAP secret) and is applied with ``tgt-admin --conf <file> --update <iqn>``, so no secret is
ever a command-line argument of ours, and ``ensure`` can re-create a target after tgtd lost it
(restart) from the same file. IQNs are Cinder's: ``<target_prefix>volume-<id>``.
Making a target is serialised between every process of the host (:func:`_making_targets`):
``tgt-admin`` gives a new target the next free target id from a listing, so two made at the
same time (two volume services, or a service and a test, on one tgtd) would be given the same
id and one would fail - silently, as tgt-admin does.
``provider_location`` = ``"<ip>:<port>,<tid> <iqn> 1"`` and ``provider_auth`` =
``"CHAP <user> <secret>"`` (Cinder's formats).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from stackcore import exception
from stackcore_drivers.volume.processes import execute

LUN = 1  # tgt's LUN 0 is the controller
_TARGET_LINE = re.compile(r"^Target (\d+): (\S+)$", re.MULTILINE)


#: the lock of :func:`_making_targets`: one per host, as tgtd is (``/run/lock`` is the
#: host's tmpfs for lock files, writable by every user; else the temporary directory)
LOCK_FILE = os.path.join("/run/lock" if os.access("/run/lock", os.W_OK)
                         else tempfile.gettempdir(), "stackcore-tgt-admin.lock")


@contextlib.contextmanager
def _making_targets() -> Iterator[None]:
    """Hold the host's lock of target making (an ``flock``, released if the process dies)
    while a target is made and awaited: tgt-admin picks the new target's id as the highest
    listed plus one, and tgtd refuses the second target given an id already taken."""
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def generate_chap() -> tuple[str, str]:
    """A random CHAP user and a 16-character secret (tgt accepts 12-16 characters)."""
    return "sc" + secrets.token_hex(8), secrets.token_urlsafe(12)[:16]


class TgtTarget:
    def __init__(self, volumes_dir: str, target_prefix: str, portal: str,
                 write_cache: bool = True) -> None:
        self.volumes_dir = volumes_dir
        self.prefix = target_prefix
        self.portal = portal
        self.write_cache = write_cache

    def iqn(self, volume_name: str) -> str:
        return f"{self.prefix}{volume_name}"

    def _conf_path(self, volume_name: str) -> str:
        return os.path.join(self.volumes_dir, volume_name)

    def targets(self) -> dict[str, int]:
        """Running targets: iqn -> tid."""
        out, _ = execute("tgtadm", "--lld", "iscsi", "--mode", "target", "--op", "show")
        return {iqn: int(tid) for tid, iqn in _TARGET_LINE.findall(out)}

    def _write_conf(self, volume_name: str, path: str, user: str, password: str) -> str:
        os.makedirs(self.volumes_dir, mode=0o700, exist_ok=True)
        conf = self._conf_path(volume_name)
        # Values are checked, never escaped: tgt's config has no quoting to rely on.
        for value in (path, user, password, volume_name):
            if not re.fullmatch(r"[A-Za-z0-9_./:@-]+", value):
                raise exception.Invalid("tgt target", "unsafe character in a target value")
        text = (
            f"<target {self.iqn(volume_name)}>\n"
            f"    backing-store {path}\n"
            f"    driver iscsi\n"
            f"    incominguser {user} {password}\n"
            f"    write-cache {'on' if self.write_cache else 'off'}\n"
            f"    scsi_sn {volume_name[-16:]}\n"
            "</target>\n"
        )
        fd = os.open(conf + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(conf + ".tmp", conf)
        return conf

    def create(self, volume_name: str, path: str,
               provider_auth: str | None = None) -> dict[str, Any]:
        """Export ``path``; returns the model update (provider_location / provider_auth).
        An existing target is kept (same CHAP)."""
        if provider_auth and provider_auth.startswith("CHAP "):
            _, user, password = provider_auth.split(" ", 2)
        else:
            user, password = generate_chap()
        conf = self._write_conf(volume_name, path, user, password)
        iqn = self.iqn(volume_name)
        tid = self.targets().get(iqn)
        if tid is None:
            try:
                tid = self._make(conf, iqn)
            except Exception:
                with contextlib.suppress(Exception):
                    self.remove(volume_name)
                raise
        return {"provider_location": f"{self.portal},{tid} {iqn} {LUN}",
                "provider_auth": f"CHAP {user} {password}"}

    def _make(self, conf: str, iqn: str) -> int:
        """Make the target ``iqn`` from its definition ``conf``; its target id."""
        with _making_targets():
            execute("tgt-admin", "--conf", conf, "--update", iqn)
            return self._wait_for(iqn)

    def _wait_for(self, iqn: str) -> int:
        for _ in range(20):
            tid = self.targets().get(iqn)
            if tid is not None:
                return tid
            time.sleep(0.1)
        raise exception.DriverError(f"tgt did not create target {iqn}")

    def ensure(self, volume_name: str) -> None:
        """Re-create a target tgtd lost, from its saved definition."""
        conf = self._conf_path(volume_name)
        iqn = self.iqn(volume_name)
        if iqn in self.targets():
            return
        if not os.path.exists(conf):
            raise exception.DriverError(f"no saved definition for target {iqn}")
        self._make(conf, iqn)

    def remove(self, volume_name: str) -> None:
        """Delete the target (forced: sessions are dropped) and its definition; idempotent.
        tgt-admin can fail silently (Cinder LP #1304122), so the result is checked."""
        iqn = self.iqn(volume_name)
        if iqn in self.targets():
            execute("tgt-admin", "--delete", iqn, "-f")
            if iqn in self.targets():
                execute("tgt-admin", "--delete", iqn)
            if iqn in self.targets():
                raise exception.DriverError(f"tgt did not delete target {iqn}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._conf_path(volume_name))

    def update(self, volume_name: str) -> None:
        """Refresh a running target's LUN size after the backing device grew."""
        iqn = self.iqn(volume_name)
        if iqn in self.targets():
            execute("tgt-admin", "--conf", self._conf_path(volume_name), "--update", iqn, "-f")

    @staticmethod
    def properties(volume_id: str, provider_location: str,
                   provider_auth: str | None) -> dict[str, Any]:
        """Cinder's ``_get_iscsi_properties`` from the stored location and auth."""
        portal_part, iqn, lun = provider_location.split(" ")
        portal = portal_part.split(",")[0].split(";")[0]
        data: dict[str, Any] = {"target_discovered": False, "target_iqn": iqn,
                                "target_portal": portal, "target_lun": int(lun),
                                "volume_id": volume_id, "discard": False}
        if provider_auth:
            method, user, password = provider_auth.split(" ", 2)
            data.update(auth_method=method, auth_username=user, auth_password=password)
        return data
