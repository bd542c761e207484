"""The full-kernel test guest, seen from the host: boot it, run commands in it, power it off.

Debian's own kernel (``linux-image-amd64``) booted by virtme-ng under QEMU TCG (``/dev/kvm``
on this machine kind cannot boot a stock kernel). The guest sees the host's root filesystem
read-only (so the repository, its virtualenv and every host binary are there) plus:

* a **writable share** (``--rwdir``): :attr:`Guest.share`, the same path on both sides, where
  the guest leaves results (logs, JSON, conformance results) for the host;
* a **scratch disk** (``--disk``): a sparse file on the host, ``/dev/sda`` in the guest, for the
  guest's LVM volume group (its writes reach the host's disk, not the guest's memory);
* QEMU's **user network**: the host's ``127.0.0.1`` is ``10.0.2.2`` from inside, so the guest
  reaches the host's tgtd and nfs-ganesha, and its agent connects back to the port this
  session listens on. The other way, :meth:`Guest.forward` makes a port of the guest reachable
  at ``127.0.0.1:PORT`` on the host (a user-network host forward added at run time through
  QEMU's monitor, ``run_dir/qmp.sock``);
* background processes: :meth:`Guest.start` runs a service in the guest (its output in the
  share) until :meth:`GuestProcess.stop`.

The agent (``tools/guest/agent.py``) runs command lines sent as JSON; then
``tools/guest/setup.sh`` loads the kernel modules and starts the guest's own services. What
the guest offers is in ``tools/backends/README.md`` ("The full-kernel guest").

Used by the pytest plugin (one guest per test session), the guest tier and the LVM benchmark::

    with Guest.boot() as guest:
        print(guest.run(["uname", "-r"]).stdout)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("STACKCORE_BACKENDS_STATE", "/var/lib/stackcore-backends"))
START_AGENT = REPO / "tools" / "guest" / "start-agent.sh"
SETUP = REPO / "tools" / "guest" / "setup.sh"
#: What the guest's environment adds (tools/guest/setup.sh writes it; the agent's commands see
#: it through :meth:`Guest.run`).
GUEST_ENV_FILE = "guest-env.json"
HOST_FROM_GUEST = "10.0.2.2"
#: The guest's own address on the user network (static: tools/guest/start-agent.sh); where a
#: host forward (:meth:`Guest.forward`) delivers connections.
GUEST_ADDR = "10.0.2.15"
#: virtme-ng's id of the user-network netdev (``--network user``: ``-netdev user,id=n0``).
NETDEV = "n0"
#: Modules udev would load at boot for QEMU's emulated hardware that no test uses: KVM (no
#: nested virtualisation under TCG), watchdogs, SMBus, the AHCI controller and its DVD drive,
#: PS/2 input, the PC speaker. Each is read over 9p and initialised under TCG: together ~15 s.
UNUSED_MODULES = ("kvm_amd", "kvm_intel", "kvm", "irqbypass", "ccp", "iTCO_wdt",
                  "iTCO_vendor_support", "i6300esb", "i2c_i801", "i2c_smbus", "lpc_ich",
                  "intel_pmc_bxt", "ahci", "libahci", "sr_mod", "cdrom", "psmouse", "pcspkr",
                  "serio_raw", "evdev", "powernow_k8")


class GuestError(RuntimeError):
    """The guest could not be booted or did not answer; the message says why and where the
    log is."""


@dataclasses.dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    seconds: float = 0.0
    timed_out: bool = False

    def check(self) -> Result:
        if self.rc != 0:
            raise GuestError(
                f"in the guest: {' '.join(self.argv)} exited {self.rc}"
                f"{' (timed out)' if self.timed_out else ''}\n--- stdout\n{self.stdout[-4000:]}"
                f"\n--- stderr\n{self.stderr[-4000:]}")
        return self


def settings() -> dict[str, str]:
    """The guest's tools (``tools/backends/up.sh guest`` installs them and writes these to
    env.sh): ``STACKCORE_GUEST_VNG``, ``STACKCORE_GUEST_KERNEL``."""
    found = {k: os.environ.get(k, "") for k in ("STACKCORE_GUEST_VNG", "STACKCORE_GUEST_KERNEL")}
    missing = [k for k, v in found.items() if not v or not os.path.exists(v)]
    if missing:
        raise GuestError(f"{', '.join(missing)} not set or missing: install the guest with "
                         "`tools/backends/up.sh guest` and source "
                         f"{STATE}/env.sh")
    return found


class _Console(threading.Thread):
    """Copies the guest's console (QEMU's stdout and stderr) into the log, each line stamped
    with the seconds since the boot started (on the host's clock: the guest's own clock is
    meaningless under TCG)."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, started: float) -> None:
        super().__init__(name="guest-console", daemon=True)
        self._proc = proc
        self._log = log
        self._t0 = started
        self.start()

    def run(self) -> None:
        assert self._proc.stdout is not None
        with open(self._log, "ab", buffering=0) as out:
            for line in self._proc.stdout:
                out.write(b"[host +%7.1fs] %s" % (time.monotonic() - self._t0, line))


class Guest:
    """One running guest. Build it with :meth:`boot`; :meth:`close` powers it off."""

    def __init__(self, run_dir: Path, proc: subprocess.Popen[bytes], console: _Console,
                 conn: socket.socket, log: Path, boot_seconds: float) -> None:
        self.run_dir = run_dir
        self.share = run_dir / "share"
        self.log = log
        self.boot_seconds = boot_seconds
        self.setup_seconds = 0.0
        self.env: dict[str, str] = {}
        self._proc = proc
        self._console = console
        self._conn = conn
        self._next_id = 1
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._forwards: dict[int, int] = {}
        self._reader = threading.Thread(target=self._read, name="guest-agent", daemon=True)
        self._reader.start()

    # --- booting ---------------------------------------------------------------------------

    @classmethod
    def boot(cls, memory: str = "2G", cpus: int = 2, disk_size: str = "24G",
             timeout: float = 480.0, setup: bool = True) -> Guest:
        """Boot a guest and wait for its agent (and, with ``setup``, for
        ``tools/guest/setup.sh``). Raises :class:`GuestError` with the tail of the console
        log when it does not come up within ``timeout`` seconds."""
        tools = settings()
        base = STATE / "guest" / "runs"
        base.mkdir(parents=True, exist_ok=True)
        run_dir = Path(os.path.realpath(
            base / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"))
        share = run_dir / "share"
        share.mkdir(parents=True)
        token = secrets.token_hex(16)
        token_file = share / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        disk = run_dir / "disk.img"
        with open(disk, "wb") as handle:  # sparse: only what the guest writes takes space
            handle.truncate(_size_bytes(disk_size))
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        log = run_dir / "console.log"
        vng = tools["STACKCORE_GUEST_VNG"]
        agent = ["/bin/sh", str(START_AGENT), f"{HOST_FROM_GUEST}:{port}", str(token_file)]
        argv = [vng, "--run", tools["STACKCORE_GUEST_KERNEL"], "--user", "root",
                "--disable-kvm", "--force-9p", "--verbose", "--network", "user", "--no-dhcp", "--memory", memory,
                "--cpus", str(cpus), "--rwdir", str(share), "--disk", str(disk),
                "--cwd", str(REPO), "--append", f"modprobe.blacklist={','.join(UNUSED_MODULES)}",
                # the host's root once more, for a cached mount (tools/guest/start-agent.sh)
                # and a QMP monitor (Guest.forward adds host forwards through it)
                "--qemu-opts=-fsdev local,id=scfast,path=/,security_model=none,readonly=on,"
                "multidevs=remap -device virtio-9p-pci,fsdev=scfast,mount_tag=scfast "
                f"-qmp unix:{run_dir / 'qmp.sock'},server=on,wait=off",
                "--exec", " ".join(agent)]
        env = dict(os.environ)
        # vng runs virtme-run, which lives next to it
        env["PATH"] = f"{os.path.dirname(vng)}:{env.get('PATH', '')}"
        started = time.monotonic()
        # The console goes through a pipe that a thread copies into the log: QEMU reopens
        # its stdout (/proc/self/fd/1) for each of virtme-ng's output ports with O_TRUNC,
        # which on a regular file would truncate the log and let the ports overwrite each
        # other; a pipe keeps every line, in order, stamped with the time since the start.
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env, cwd=str(REPO),
                                start_new_session=True)
        console = _Console(proc, log, started)
        try:
            conn = _accept(listener, proc, token, started + timeout, log)
        except BaseException:
            _kill(proc)
            console.join()
            raise
        finally:
            listener.close()
        guest = cls(run_dir, proc, console, conn, log, time.monotonic() - started)
        if setup:
            try:
                guest.setup()
            except BaseException:
                guest.close()
                raise
        return guest

    def setup(self) -> None:
        """Run tools/guest/setup.sh (modules, LVM, tgtd, iscsid, OVS) and load its env."""
        started = time.monotonic()
        self.run(["bash", str(SETUP), str(self.share)], timeout=600).check()
        self.env = json.loads((self.share / GUEST_ENV_FILE).read_text())
        self.setup_seconds = time.monotonic() - started

    # --- commands --------------------------------------------------------------------------

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
            cwd: str | None = None, timeout: float = 600) -> Result:
        """Run ``argv`` in the guest (no shell) with the guest's environment plus ``env``."""
        with self._lock:
            ident = self._next_id
            self._next_id += 1
            done = threading.Event()
            box: list[dict[str, Any]] = []
            self._waiting[ident] = (done, box)
        request = {"id": ident, "argv": list(argv), "env": {**self.env, **(env or {})},
                   "cwd": cwd or str(REPO), "timeout": timeout}
        self._send(request)
        if not done.wait(timeout + 30):
            raise GuestError(f"no answer from the guest to {' '.join(argv)} after "
                             f"{timeout + 30:.0f} s (console: {self.log})")
        if not box:
            raise GuestError(f"the guest went away while running {' '.join(argv)} "
                             f"(console: {self.log}):\n{_tail(self.log)}")
        reply = box[0]
        return Result(tuple(argv), int(reply["rc"]), reply.get("stdout", ""),
                      reply.get("stderr", ""), float(reply.get("seconds", 0.0)),
                      bool(reply.get("timed_out", False)))

    def _send(self, message: Mapping[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        try:
            self._conn.sendall(data)
        except OSError as err:
            raise GuestError(f"the guest's agent is gone ({err}); console: {self.log}") \
                from err

    def _read(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in self._conn.makefile("r", encoding="utf-8"):
                reply = json.loads(line)
                with self._lock:
                    waiter = self._waiting.pop(int(reply.get("id", -1)), None)
                if waiter is not None:
                    waiter[1].append(reply)
                    waiter[0].set()
        with self._lock:  # the agent is gone: wake everyone still waiting, empty-handed
            for done, _box in self._waiting.values():
                done.set()
            self._waiting.clear()

    def start(self, argv: Sequence[str], name: str, env: Mapping[str, str] | None = None,
              timeout: float = 3600) -> GuestProcess:
        """Start ``argv`` in the guest in the background (a service): its stdout and stderr go
        to ``share/NAME.log``, readable on the host while it runs. Stop it with
        :meth:`GuestProcess.stop`; ``timeout`` bounds its life (then the agent kills it)."""
        return GuestProcess(self, argv, name, env, timeout)

    def forward(self, guest_port: int) -> int:
        """Make TCP ``guest_port`` of the guest (on :data:`GUEST_ADDR`: a service there must
        listen on that address, not only on the guest's loopback) reachable at
        ``127.0.0.1:PORT`` on the host; returns PORT, a free port QEMU picked. The forward
        lasts until the guest is powered off; asking again returns the same port."""
        with self._lock:
            if guest_port in self._forwards:
                return self._forwards[guest_port]
            # Port 0: QEMU binds a free port itself (no window in which another process could
            # take one chosen here); "info usernet" then tells which.
            rule = f"tcp:127.0.0.1:0-{GUEST_ADDR}:{guest_port}"
            answer = self._hmp(f"hostfwd_add {NETDEV} {rule}")
            if answer.strip():
                raise GuestError(f"QEMU refused the host forward {rule}: {answer.strip()}")
            table = self._hmp("info usernet")
            ports = {int(port) for port, dest in re.findall(
                r"TCP\[HOST_FORWARD\]\s+\d+\s+127\.0\.0\.1\s+(\d+)\s+"
                + re.escape(GUEST_ADDR) + r"\s+(\d+)", table) if int(dest) == guest_port}
            ports -= set(self._forwards.values())
            if len(ports) != 1:
                raise GuestError(f"cannot tell which host port forwards to {GUEST_ADDR}:"
                                 f"{guest_port} (QEMU's info usernet):\n{table}")
            self._forwards[guest_port] = ports.pop()
            return self._forwards[guest_port]

    def _hmp(self, command: str) -> str:
        """One human-monitor command through QEMU's QMP socket; its text answer."""
        path = str(self.run_dir / "qmp.sock")
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            try:
                sock.connect(path)
            except OSError as err:
                raise GuestError(f"QEMU's monitor {path}: {err}") from err
            stream = sock.makefile("rw", encoding="utf-8")

            def call(execute: str, **arguments: Any) -> Any:
                stream.write(json.dumps({"execute": execute, "arguments": arguments}) + "\n")
                stream.flush()
                while True:
                    line = stream.readline()
                    if not line:
                        raise GuestError(f"QEMU's monitor closed during {execute}")
                    answer = json.loads(line)
                    if "event" in answer:
                        continue
                    if "error" in answer:
                        raise GuestError(f"QEMU's monitor: {execute}: {answer['error']}")
                    return answer["return"]

            stream.readline()  # the greeting
            call("qmp_capabilities")
            return str(call("human-monitor-command", **{"command-line": command}))

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    # --- power off -------------------------------------------------------------------------

    def close(self, keep: bool = False) -> None:
        """Power the guest off (the agent exits, so does ``vng --exec``); kill QEMU if it has
        not gone within 60 s. Removes the scratch disk; keeps the share and console log only
        with ``keep``."""
        with contextlib.suppress(GuestError):
            self._send({"id": 0, "shutdown": True})
        try:
            self._proc.wait(60)
        except subprocess.TimeoutExpired:
            _kill(self._proc)
        self._console.join(10)
        with contextlib.suppress(OSError):
            self._conn.close()
        with contextlib.suppress(FileNotFoundError):
            (self.run_dir / "disk.img").unlink()
        if not keep:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(keep=exc[0] is not None)


class GuestProcess:
    """A process running in the background in the guest (:meth:`Guest.start`)."""

    def __init__(self, guest: Guest, argv: Sequence[str], name: str,
                 env: Mapping[str, str] | None, timeout: float) -> None:
        self.guest = guest
        self.log = guest.share / f"{name}.log"
        self._pid_file = guest.share / f"{name}.pid"
        self.result: Result | GuestError | None = None
        self._done = threading.Event()
        self.log.unlink(missing_ok=True)
        self._pid_file.unlink(missing_ok=True)
        # bash writes its pid and becomes the command (exec): the pid is the command's, and
        # the agent, whose child it is, reaps it and reports its exit status.
        wrapped = ["bash", "-c", 'echo $$ >"$1" && exec "${@:2}" >"$0" 2>&1', str(self.log),
                   str(self._pid_file), *argv]

        def run() -> None:
            try:
                self.result = guest.run(wrapped, env=env, timeout=timeout)
            except GuestError as err:
                self.result = err
            finally:
                self._done.set()

        self._thread = threading.Thread(target=run, name=f"guest-{name}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_output(self, text: str, timeout: float) -> None:
        """Wait until ``text`` appears in the process's output; :class:`GuestError` (with the
        output's tail) if it exits or ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if not self.running:
                raise GuestError(f"{self.log.name[:-4]} ended ({self.result!r}) before "
                                 f"printing {text!r}:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise GuestError(f"{self.log.name[:-4]} printed no {text!r} in {timeout:g} s:"
                                 f"\n{self.output()[-3000:]}")
            self._done.wait(0.25)

    def stop(self, timeout: float = 60) -> Result:
        """SIGTERM, then wait (at most ``timeout`` seconds) for the exit; returns how it
        ended (its exit status in ``rc``). :class:`GuestError` if it did not end."""
        deadline = time.monotonic() + timeout
        pid = ""
        while self.running and not pid.isdigit() and time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):  # written as the process starts
                pid = self._pid_file.read_text().strip()
            if not pid.isdigit():
                self._done.wait(0.2)
        if self.running and pid.isdigit():
            self.guest.run(["kill", "-TERM", pid], timeout=30)
            self._done.wait(max(0.0, deadline - time.monotonic()))
        if self.running:
            raise GuestError(f"{self.log.name[:-4]} still ran {timeout:g} s after SIGTERM:"
                             f"\n{self.output()[-3000:]}")
        if isinstance(self.result, GuestError):
            raise self.result
        assert self.result is not None
        return self.result


def _accept(listener: socket.socket, proc: subprocess.Popen[bytes], token: str,
            deadline: float, log: Path) -> socket.socket:
    listener.settimeout(1.0)
    while True:
        if proc.poll() is not None:
            raise GuestError(f"the guest exited ({proc.returncode}) before its agent "
                             f"connected; console {log}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise GuestError(f"the guest's agent did not connect in time; console {log}:\n"
                             f"{_tail(log)}")
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(30)
        try:
            hello = json.loads(conn.makefile("r", encoding="utf-8").readline() or "{}")
        except (OSError, ValueError):
            hello = {}
        if hello.get("hello") == token:
            conn.settimeout(None)
            return conn
        conn.close()  # not our agent


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no console log)"


def _size_bytes(size: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


@contextlib.contextmanager
def booted(**kwargs: Any) -> Iterator[Guest]:
    guest = Guest.boot(**kwargs)
    try:
        yield guest
    finally:
        guest.close()
