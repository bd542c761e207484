"""A minimal userspace NFS client over libnfs (ctypes), for hosts without a kernel NFS client.

qemu reads and writes volume data through its own ``nfs://`` driver (libnfs too); what it
cannot do is list, stat, remove or rename files and report the share's capacity. This module
does exactly those through ``libnfs.so.13`` (Debian 12's libnfs 4.x ABI), synchronous API, one
context per call sequence. Paths are relative to the export root and start with ``/``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import threading
from types import TracebackType

from stackcore import exception

O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC = os.O_RDONLY, os.O_WRONLY, os.O_CREAT, os.O_TRUNC


class _StatVfs64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
        "f_favail", "f_fsid", "f_flag", "f_namemax")]


class _Stat64(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "nfs_dev", "nfs_ino", "nfs_mode", "nfs_nlink", "nfs_uid", "nfs_gid", "nfs_rdev",
        "nfs_size", "nfs_blksize", "nfs_blocks", "nfs_atime", "nfs_mtime", "nfs_ctime",
        "nfs_atime_nsec", "nfs_mtime_nsec", "nfs_ctime_nsec", "nfs_used")]


class _DirEnt(ctypes.Structure):
    pass


_DirEnt._fields_ = [("next", ctypes.POINTER(_DirEnt)), ("name", ctypes.c_char_p)]


@functools.cache
def _lib() -> ctypes.CDLL:
    path = ctypes.util.find_library("nfs") or "libnfs.so.13"
    try:
        lib = ctypes.CDLL(path)
    except OSError as err:
        raise exception.DriverError(f"libnfs is not installed ({err}); install libnfs13 or "
                                    "use nfs_access = mount") from err
    vp = ctypes.c_void_p
    lib.nfs_init_context.restype = vp
    lib.nfs_destroy_context.argtypes = [vp]
    lib.nfs_set_timeout.argtypes = [vp, ctypes.c_int]
    lib.nfs_get_error.restype = ctypes.c_char_p
    lib.nfs_get_error.argtypes = [vp]
    lib.nfs_mount.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p]
    lib.nfs_statvfs64.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(_StatVfs64)]
    lib.nfs_stat64.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(_Stat64)]
    lib.nfs_unlink.argtypes = [vp, ctypes.c_char_p]
    lib.nfs_rename.argtypes = [vp, ctypes.c_char_p, ctypes.c_char_p]
    lib.nfs_opendir.argtypes = [vp, ctypes.c_char_p, ctypes.POINTER(vp)]
    lib.nfs_readdir.argtypes = [vp, vp]
    lib.nfs_readdir.restype = ctypes.POINTER(_DirEnt)
    lib.nfs_closedir.argtypes = [vp, vp]
    lib.nfs_open.argtypes = [vp, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(vp)]
    lib.nfs_creat.argtypes = [vp, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(vp)]
    lib.nfs_close.argtypes = [vp, vp]
    lib.nfs_read.argtypes = [vp, vp, ctypes.c_uint64, ctypes.c_void_p]
    lib.nfs_write.argtypes = [vp, vp, ctypes.c_uint64, ctypes.c_void_p]
    return lib


class NfsShare:
    """One NFS export, mounted in userspace: ``with NfsShare(server, export) as share: ...``.

    Thread-safe by serialising calls on the context (libnfs contexts are not thread-safe).

    Every synchronous call is bounded by ``timeout`` seconds (libnfs waits forever by default:
    a server that stops answering would hold the calling thread, and with it the resource it
    works on, for ever). A context whose call failed other than with "no such file" (timed
    out, connection lost, server restarted) is replaced by a fresh mount before the next call,
    so one crash of the server does not poison a long-lived share."""

    def __init__(self, server: str, export: str, timeout: float = 60.0) -> None:
        self.server, self.export = server, export
        self.timeout = timeout
        self._ctx: int | None = None
        self._broken = False
        self._lock = threading.RLock()

    def __enter__(self) -> NfsShare:
        self.connect()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def connect(self) -> None:
        with self._lock:
            if self._ctx is not None:
                return
            lib = _lib()
            ctx = lib.nfs_init_context()
            if not ctx:
                raise exception.BackendUnavailable("libnfs could not allocate a context")
            lib.nfs_set_timeout(ctx, max(1, int(self.timeout * 1000)))  # milliseconds
            if lib.nfs_mount(ctx, self.server.encode(), self.export.encode()) != 0:
                error = (lib.nfs_get_error(ctx) or b"").decode(errors="replace")
                lib.nfs_destroy_context(ctx)
                raise exception.BackendUnavailable(
                    f"cannot mount nfs://{self.server}{self.export}: {error}")
            self._ctx = ctx
            self._broken = False

    def close(self) -> None:
        with self._lock:
            if self._ctx is not None:
                _lib().nfs_destroy_context(self._ctx)
                self._ctx = None

    def _ready(self) -> None:
        """(Re)mount if there is no context or the last call left it broken. Caller holds
        the lock."""
        if self._broken:
            self.close()
        self.connect()

    def _call(self, what: str, rc: int) -> int:
        if rc < 0:
            error = (_lib().nfs_get_error(self._ctx) or b"").decode(errors="replace")
            if "NOENT" in error or rc == -2:
                raise FileNotFoundError(f"{what}: {error}")
            self._broken = True
            raise exception.DriverError(f"nfs {what} on {self.server}:{self.export}: {error}")
        return rc

    def statvfs(self) -> tuple[int, int]:
        """(total bytes, available bytes) of the share."""
        with self._lock:
            self._ready()
            st = _StatVfs64()
            self._call("statvfs", _lib().nfs_statvfs64(self._ctx, b"/", ctypes.byref(st)))
            return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

    def stat(self, name: str) -> tuple[int, int]:
        """(apparent size, allocated bytes) of ``/name``; FileNotFoundError if absent."""
        with self._lock:
            self._ready()
            st = _Stat64()
            self._call(f"stat {name}", _lib().nfs_stat64(self._ctx, f"/{name}".encode(),
                                                          ctypes.byref(st)))
            return st.nfs_size, st.nfs_used or st.nfs_blocks * 512

    def exists(self, name: str) -> bool:
        try:
            self.stat(name)
        except FileNotFoundError:
            return False
        return True

    def listdir(self) -> list[str]:
        with self._lock:
            self._ready()
            lib = _lib()
            handle = ctypes.c_void_p()
            self._call("opendir", lib.nfs_opendir(self._ctx, b"/", ctypes.byref(handle)))
            names = []
            try:
                while True:
                    entry = lib.nfs_readdir(self._ctx, handle)
                    if not entry:
                        break
                    name = entry.contents.name.decode(errors="replace")
                    if name not in (".", ".."):
                        names.append(name)
            finally:
                lib.nfs_closedir(self._ctx, handle)
            return sorted(names)

    def unlink(self, name: str) -> bool:
        """Remove ``/name``; False if it did not exist."""
        with self._lock:
            self._ready()
            try:
                self._call(f"unlink {name}", _lib().nfs_unlink(self._ctx, f"/{name}".encode()))
            except FileNotFoundError:
                return False
            return True

    def rename(self, old: str, new: str) -> None:
        with self._lock:
            self._ready()
            self._call(f"rename {old}", _lib().nfs_rename(self._ctx, f"/{old}".encode(),
                                                          f"/{new}".encode()))

    def read_bytes(self, name: str, limit: int = 1 << 20) -> bytes:
        with self._lock:
            self._ready()
            lib = _lib()
            fh = ctypes.c_void_p()
            self._call(f"open {name}", lib.nfs_open(self._ctx, f"/{name}".encode(), O_RDONLY,
                                                    ctypes.byref(fh)))
            try:
                buf = ctypes.create_string_buffer(limit)
                count = self._call(f"read {name}", lib.nfs_read(self._ctx, fh, limit, buf))
                return buf.raw[:count]
            finally:
                lib.nfs_close(self._ctx, fh)

    def write_bytes(self, name: str, data: bytes, mode: int = 0o600) -> None:
        """Replace ``/name`` atomically (write a temporary file, rename it over)."""
        with self._lock:
            self._ready()
            lib = _lib()
            tmp = f"{name}.tmp"
            fh = ctypes.c_void_p()
            self._call(f"create {tmp}", lib.nfs_creat(self._ctx, f"/{tmp}".encode(), mode,
                                                      ctypes.byref(fh)))
            try:
                written = self._call(f"write {tmp}", lib.nfs_write(self._ctx, fh, len(data),
                                                                   data))
                if written != len(data):
                    raise exception.DriverError(f"short write to {tmp}")
            finally:
                lib.nfs_close(self._ctx, fh)
            self.rename(tmp, name)
