"""libvirtd crashes (SIGKILL) while the compute service builds and deletes KVM servers on it.

A PRIVATE libvirtd (its own mount namespace: sockets, state and config under the test's
directory; the shared daemon is never touched), an embedded cloud whose compute host runs the
libvirt driver on it. The daemon is killed and started again while builds and deletes are in
flight; the running guests (QEMU processes) survive the daemon, and the restarted daemon takes
them back. Nothing of stackcore is restarted: the driver reconnects by itself (tenacity
back-off). Each server ends ACTIVE with a running domain or in ERROR with a fault naming
libvirt and no domain; nothing stays transient; the domains are exactly the live servers;
claims equal allocations.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import stackcore
from tests.conftest import backend_env
from tests.functional.compute.conftest import PrivateLibvirtd, libvirt

from .conftest import Recovery, poll
from .invariants import claim_problems, fault_problems, transient_problems
from .workload import Workload

pytestmark = pytest.mark.real

HOST = "lv-fault"
CRASHES = 2


class CrashingLibvirtd(PrivateLibvirtd):
    def kill(self) -> None:
        """SIGKILL the daemon (its QEMU processes live on, as after a real crash)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.process = None


@pytest.fixture
def daemon() -> Iterator[CrashingLibvirtd]:
    backend_env("STACKCORE_TEST_LIBVIRT_URI", "libvirt")  # its packages come with that service
    # a short root: the daemon's socket paths must fit in sun_path
    daemon = CrashingLibvirtd(Path(f"/tmp/sc-lv-{uuid.uuid4().hex[:8]}"))
    daemon.start()
    try:
        yield daemon
    finally:
        # Leave nothing running: this daemon's domains, the daemon, its QEMU processes.
        if daemon.process is None:
            daemon.start()
        conn = libvirt.open(daemon.uri)
        for dom in conn.listAllDomains(0):
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()
        conn.close()
        leftover = daemon.qemu_pids()
        daemon.stop()
        for pid in leftover:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(daemon.root, ignore_errors=True)


def _domains(uri: str) -> dict[str, bool]:
    """Instance uuid -> running, of the stackcore domains of this host on the daemon."""
    from stackcore_drivers.libvirt import domain_xml

    conn = libvirt.open(uri)
    try:
        found = {}
        for dom in conn.listAllDomains(0):
            owner = domain_xml.ownership(domain_xml.parse(dom.XMLDesc(0)))
            if owner is not None and owner.host == HOST:
                found[owner.uuid] = bool(dom.isActive())
        return found
    finally:
        conn.close()


def test_compute_survives_a_libvirtd_crash_mid_operation(
    daemon: CrashingLibvirtd, recovery: Callable[[str], Recovery], tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    image = state / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    cloud = stackcore.Cloud(services=("scheduler", "compute"), overrides={
        "DEFAULT": {"state_path": str(state), "periodic_interval": 1, "rpc_call_timeout": 10},
        "compute": {"driver": "libvirt", "hosts": [HOST]},
        "libvirt": {"connection_uri": daemon.uri,
                    "virt_type": backend_env("STACKCORE_TEST_VIRT_TYPE", "libvirt"),
                    "instances_path": str(state / "instances"), "device_detach_timeout": 10,
                    "connection_retries": 3, "connection_retry_interval": 0.5},
    })
    try:
        cloud.compute.create_flavor("tiny", 1, 64, 1)
        cloud.compute.register_image("base", str(image), "qcow2", {"architecture": "x86_64"})
        names = itertools.count()
        created: set[str] = set()

        def step(thread: int, iteration: int, record: Callable[..., Any]) -> None:
            server = record("create_server", cloud.compute.create_server,
                            f"lv-{next(names)}", "tiny", "base", timeout=120)
            if server is not None:
                created.add(server.id)
                record("delete_server", cloud.compute.delete_server, server.id)

        workload = Workload(2, step).start()
        in_flight = []
        for crash in range(CRASHES):
            workload.wait_for(4 * (crash + 1), 180)
            in_flight.append(workload.in_flight)
            clock = recovery("libvirtd")
            daemon.kill()
            daemon.start()
            clock.backend_back()

        def server_built() -> bool:
            try:
                server = cloud.compute.create_server("after", "tiny", "base", timeout=120)
            except stackcore.exception.StackcoreError:
                return False
            created.add(server.id)
            return server.status == "ACTIVE"

        poll(server_built, 120, "a server built after the restart", interval=0.5)
        seconds = clock.service_back("a server was built (ACTIVE)")
        workload.stop(240)
        assert sum(in_flight) > 0, "no call was in flight at any crash"
        assert not workload.foreign_errors(), workload.foreign_errors()

        engine = cloud.db.engine
        poll(lambda: not transient_problems(engine), 60, "nothing left transient")
        assert fault_problems(engine, ("libvirt",)) == []
        assert claim_problems(engine) == []
        with engine.connect() as conn:
            found = list(conn.execute(sa.text(
                "SELECT uuid, vm_state, launched_at FROM instances")))
        rows = {r.uuid: r.vm_state for r in found}
        assert set(rows) == created
        live = {u for u, s in rows.items() if s != "deleted"}
        # A build the crash cut off owns nothing on the hypervisor; a server whose delete
        # it cut off is in ERROR with its domain and claim kept, for the delete to be
        # retried (done below).
        failed = {r.uuid for r in found if r.vm_state == "error" and r.launched_at is None}
        # a build cut off by the crash may have left a domain its clean-up could not reach:
        # the compute service destroys it once libvirtd is back
        domains = poll(lambda: (found := _domains(daemon.uri)) is not None
                       and not (set(found) & failed) and [found], 60,
                       "the domains of failed builds destroyed")[0]
        assert set(domains) <= live, f"domains of no live server: {set(domains) - live}"
        for server_id, vm_state in rows.items():
            if vm_state == "active":
                assert domains.get(server_id), f"ACTIVE server {server_id} has no running domain"
            elif server_id in failed:
                assert server_id not in domains, f"failed build {server_id} kept its domain"
        errors = sum(s == "error" for s in rows.values())
        print(f"\nlibvirtd: {CRASHES} crashes with {in_flight} calls in flight; workload "
              f"{workload.summary()}; {errors} server(s) ended in ERROR")
        for server_id in live:
            cloud.compute.delete_server(server_id)
        poll(lambda: not _domains(daemon.uri), 60, "every domain gone")
        assert seconds < 60, f"a server was built only {seconds:.1f} s after the restart"
    finally:
        cloud.close()
