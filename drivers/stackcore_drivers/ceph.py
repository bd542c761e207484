"""What the Ceph drivers (the ``rbd`` volume driver, the ``rbd`` image store, the ``ceph``
backup driver and the libvirt driver's RBD root disks) share: loading the distribution's
bindings, connecting a client with timeouts, and removing an RBD image that a closing watcher
may still hold.

Why removal waits: ``RBD().remove`` refuses an image with watchers (``ImageBusy``), and a watch
can outlive the ``close()`` that ended it. When a client's watch hit an error under load (a ping
the OSD answered late), librbd re-registers it; the OSD keeps the old registration until the
watch timeout (``osd_client_watch_timeout``, 30 s by default) expires it. CI saw exactly this: an
image store ``add`` whose stream was refused closed its fresh image, and the removal that
followed got ``ImageBusy`` from a watcher nobody held any more. Cinder retries the removal on
``ImageBusy`` for the same reason. A live watcher (a guest with the volume attached, a reader of
the image) outlasts the wait, and the caller gets the error.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from stackcore import exception

LOG = logging.getLogger(__name__)

#: Ceph's default ``osd_client_watch_timeout``: how long the OSD keeps a watch its client no
#: longer pings; a watcher still there after that (plus a margin) is alive.
WATCH_TIMEOUT = 30.0


def bindings(user: str) -> tuple[Any, Any]:
    """``(rados, rbd)``; ConfigError naming ``user`` (the driver) when they are missing."""
    try:
        import rados
        import rbd
    except ImportError as err:
        raise exception.ConfigError(
            f"{user} needs the Ceph Python bindings (Debian: python3-rados python3-rbd; in a "
            "venv run tools/backends/python-bindings.sh PYTHON)") from err
    return rados, rbd


def connect(rados: Any, *, user: str | None, conffile: str, timeout: float | None,
            clustername: str | None = None, pool: str | None = None) -> Any:
    """A connected ``rados.Rados`` client. ``timeout`` (seconds; None: librados's defaults)
    bounds connecting and every monitor/OSD operation and mount, so that an unreachable
    cluster is an error, not a hang; ``pool``, when given, is opened once to prove that it
    exists. Raises the bindings' ``rados.Error`` - each driver says what failed in its own
    terms (a ConfigError at start-up, BackendUnavailable later) - after shutting down the
    half-made client."""
    client = rados.Rados(rados_id=user, clustername=clustername, conffile=conffile or "")
    try:
        if timeout is not None:
            for key in ("rados_osd_op_timeout", "rados_mon_op_timeout", "client_mount_timeout"):
                client.conf_set(key, str(timeout))
            client.connect(timeout=timeout)
        else:
            client.connect()
        if pool is not None:
            client.open_ioctx(pool).close()
    except rados.Error:
        with contextlib.suppress(Exception):
            client.shutdown()
        raise
    return client


def remove_image(ioctx: Any, name: str, patience: float = WATCH_TIMEOUT + 5) -> bool:
    """Remove the RBD image ``name`` (no snapshots left); False if it was gone already.

    ``ImageBusy`` (a watcher) is retried with back-off for up to ``patience`` seconds, then
    re-raised: the caller says what a busy image means for it."""
    import tenacity

    _, rbd = bindings("the rbd drivers")

    def log_busy(state: tenacity.RetryCallState) -> None:
        LOG.warning("rbd: %s is busy (a watcher) %.1f s into its removal; waiting for the "
                    "watch to end", name, state.seconds_since_start)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(patience),
        wait=tenacity.wait_exponential(multiplier=0.1, max=2.0),
        retry=tenacity.retry_if_exception_type(rbd.ImageBusy),
        before_sleep=log_busy, reraise=True)
    for attempt in retrying:
        with attempt:
            try:
                rbd.RBD().remove(ioctx, name)
            except rbd.ImageNotFound:
                return False
    return True
