"""Who runs an upload, and whether it still runs.

An image in ``saving`` records its upload's *owner*: ``host|boot id|pid namespace|pid|process
start time``. After a crash nobody is left to say the upload failed, so start-up and the
periodic check (:meth:`stackcore.image.api.ImageAPI.reset_interrupted_uploads`) decide from the
owner:

* an owner on **this host** (same host name: host names are unique among the hosts sharing a
  database, as for every OpenStack service) is checked for certain: the host booted since
  (another boot id): dead; in this PID namespace, no process with that pid and start time
  exists (a reused pid has another start time), or - this very process - no upload of the
  image runs in it: dead. Another PID namespace of the same kernel (a container sharing the
  host name) cannot be looked into: judged like another host's;
* an owner on **another host** cannot be checked from here: it is presumed dead once its
  heartbeat (``upload_heartbeat``, refreshed while the bytes flow) is older than ``[image]
  interrupted_upload_timeout``. Should it still be running after all (a stalled stream), its
  next heartbeat or its final step finds the image no longer its own and gives up, removing
  what it stored;
* no owner (left ``saving`` by a version that recorded none): dead.

Linux ``/proc`` gives the boot id and process start times; elsewhere the pid alone is checked.
"""

from __future__ import annotations

import datetime
import functools
import os
import socket
import threading

_SEP = "|"

#: image ids whose upload runs in this process (any Cloud of it)
_running: set[str] = set()
_running_lock = threading.Lock()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


@functools.cache
def _boot_id() -> str:
    return _read("/proc/sys/kernel/random/boot_id") or "-"


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks after boot), None when no such process; "-"
    where /proc cannot tell (then only the pid is compared)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is not None:
        # the command name (field 2) may hold spaces and parentheses: count after its end
        return stat.rpartition(")")[2].split()[19]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "-"  # exists, another user's
    return "-" if not os.path.isdir("/proc/self") else None


@functools.cache
def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "-"


def host() -> str:
    return socket.gethostname()


def owner() -> str:
    """This process, as an upload's owner."""
    pid = os.getpid()
    return _SEP.join((host(), _boot_id(), _pid_namespace(), str(pid), _start_time(pid) or "-"))


def started(image_id: str) -> None:
    with _running_lock:
        _running.add(image_id)


def finished(image_id: str) -> None:
    with _running_lock:
        _running.discard(image_id)


def dead_because(image_id: str, owner_token: str | None,
                 heartbeat: datetime.datetime | None, now: datetime.datetime,
                 timeout: float) -> str | None:
    """Why the upload of ``image_id`` owned by ``owner_token`` is no longer running, or None
    when it may still be."""
    if not owner_token:
        return "no process is recorded as running it"
    parts = owner_token.split(_SEP)
    if len(parts) != 5 or not parts[3].isdigit():
        return f"its owner {owner_token!r} is not one this version records"
    where, boot, namespace, pid_text, start = parts
    pid = int(pid_text)
    if where == host() and boot not in ("-", _boot_id()):
        return f"host {where} restarted since"
    if where == host() and namespace == _pid_namespace():
        if pid == os.getpid() and start == (_start_time(pid) or "-"):
            with _running_lock:
                running = image_id in _running
            return None if running else f"process {pid} on {where} runs no upload of it"
        now_start = _start_time(pid)
        if now_start is None or (start != "-" and now_start not in ("-", start)):
            return f"process {pid} on {where} is gone"
        return None
    age = None if heartbeat is None else (now - heartbeat).total_seconds()
    if age is None or age > timeout:
        seen = "never" if age is None else f"{age:.0f} s ago"
        return (f"its process {pid} on host {where} last reported progress {seen} "
                f"([image] interrupted_upload_timeout {timeout:g} s)")
    return None
