"""The command agent that runs inside the test guest (started by ``vng --exec``).

It connects back to the host over QEMU's user network (the host is ``10.0.2.2`` from inside),
proves who it is with the token the host wrote into the writable share, and then runs the
command lines the host sends, one JSON object per line::

    host -> guest  {"id": 7, "argv": ["lvs"], "env": {"K": "V"}, "cwd": "/", "timeout": 60}
    guest -> host  {"id": 7, "rc": 0, "stdout": "...", "stderr": "..."}
    host -> guest  {"id": 0, "shutdown": true}        (power off the guest)

Commands run concurrently (one thread each, replies tagged with their id), never through a
shell.  A command that outlives its timeout is killed with its process group and answers
``rc = -9`` with ``timed_out``.  Standard library only: it runs before anything is set up.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any


def _run(request: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    env.update(request.get("env") or {})
    started = time.monotonic()
    # Output goes to files, not pipes: a command that starts a daemon (tgtd, iscsid, udevd)
    # would otherwise keep the pipe open and the answer would wait for the daemon to exit.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                request["argv"], cwd=request.get("cwd") or "/", env=env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        except OSError as failed:
            return {"id": request["id"], "rc": 127, "stdout": "",
                    "stderr": f"cannot run: {failed}", "seconds": 0.0}
        timed_out = False
        try:
            proc.wait(timeout=request.get("timeout") or None)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.seek(0)
        err.seek(0)
        return {"id": request["id"], "rc": proc.returncode, "timed_out": timed_out,
                "stdout": out.read().decode(errors="replace"),
                "stderr": err.read().decode(errors="replace"),
                "seconds": round(time.monotonic() - started, 3)}


def _connect(address: str, deadline: float) -> socket.socket:
    host, _, port = address.rpartition(":")
    started = time.monotonic()
    while True:
        try:
            sock = socket.create_connection((host, int(port)), timeout=10)
        except OSError as err:
            if time.monotonic() > deadline:
                print(f"agent: cannot reach {address}: {err}", file=sys.stderr)
                subprocess.run(["ip", "addr"], check=False)
                subprocess.run(["ip", "route"], check=False)
                raise
            time.sleep(0.2)  # the guest's network may still be coming up (DHCP)
        else:
            print(f"agent: connected to {address} after {time.monotonic() - started:.1f} s",
                  file=sys.stderr, flush=True)
            return sock


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connect", required=True, help="HOST:PORT of the test session")
    parser.add_argument("--token-file", required=True)
    args = parser.parse_args()
    with open(args.token_file, encoding="ascii") as handle:
        token = handle.read().strip()
    sock = _connect(args.connect, time.monotonic() + 300)
    sock.settimeout(None)
    reader = sock.makefile("r", encoding="utf-8")
    lock = threading.Lock()

    def reply(message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        with lock:
            sock.sendall(data)

    def serve(request: dict[str, Any]) -> None:
        try:
            reply(_run(request))
        except Exception as err:  # noqa: BLE001 - the host must get an answer, whatever broke
            reply({"id": request.get("id"), "rc": 126, "stdout": "",
                   "stderr": f"agent error: {err!r}"})

    reply({"id": 0, "hello": token, "pid": os.getpid(), "uname": os.uname().release})
    for line in reader:
        request = json.loads(line)
        if request.get("shutdown"):
            break
        threading.Thread(target=serve, args=(request,), daemon=True).start()
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
