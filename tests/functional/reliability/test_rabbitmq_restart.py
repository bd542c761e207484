"""RabbitMQ crashes (the Erlang VM killed) while services split across processes build servers
and make volumes and snapshots through it.

The scheduler, a compute service (two fake hosts) and a volume service (fake backend) run as
processes of their own (``stackcore service NAME``) on a PRIVATE RabbitMQ node
(tools/backends/private.sh rabbitmq) and a fresh PostgreSQL database; this process is an
API-only client. The node is killed and started again (its non-durable queues are gone) while
calls are in flight; nothing of stackcore is restarted. oslo.messaging reconnects by itself;
a request the broker lost either times out at its caller (the server or volume in ERROR with a
fault naming the broker) or, for a cast, is picked up by the receiving service's periodic
reconciliation. Nothing stays transient, rows are what the calls returned, claims equal
allocations.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import stackcore

from .conftest import PrivateBackend, Recovery, poll
from .invariants import claim_problems, duplicate_problems, fault_problems, transient_problems
from .services import ServiceProcess, write_config
from .workload import Workload

pytestmark = [pytest.mark.real, pytest.mark.postgres, pytest.mark.rabbit]

CRASHES = 2
RPC_TIMEOUT = 15


@contextlib.contextmanager
def broker_state_on_failure(rabbit: PrivateBackend) -> Iterator[None]:
    """A failure carries the broker's queues with their consumers: a service that no longer
    answers shows there as a server queue with messages and no consumer (or no queue)."""
    try:
        yield
    except BaseException as err:
        err.add_note(f"broker queues (name, consumers, messages) at the failure:\n"
                     f"{rabbit.queues()}")
        raise


@pytest.fixture
def split(private_backend: Callable[[str], PrivateBackend], pg_url: str, tmp_path: Path
          ) -> Iterator[dict[str, Any]]:
    rabbit = private_backend("rabbitmq")
    common: dict[str, dict[str, Any]] = {
        "DEFAULT": {"transport_url": rabbit.env["URL"], "report_interval": 1,
                    "service_down_time": 30, "periodic_interval": 1,
                    "rpc_call_timeout": RPC_TIMEOUT},
        "database": {"connection": pg_url},
    }
    log = tmp_path / "services.log"
    procs = {}
    for name, extra in (("scheduler", {}), ("compute", {"compute": {"hosts": ["mq-1", "mq-2"]}}),
                        ("volume", {})):
        sections = {**common, **extra}
        sections["DEFAULT"] = {**common["DEFAULT"], "state_path": str(tmp_path / name)}
        procs[name] = ServiceProcess(name, write_config(tmp_path / f"{name}.conf", sections), log)
    for proc in procs.values():
        proc.start()
    api_conf = write_config(tmp_path / "api.conf", {
        **common, "DEFAULT": {**common["DEFAULT"], "state_path": str(tmp_path / "api")}})
    api = stackcore.Cloud(api_conf, services=())
    try:
        yield {"rabbit": rabbit, "api": api, "procs": procs, "log": log,
               "state": tmp_path / "volume"}
    finally:
        api.close()
        for proc in procs.values():
            proc.stop()


# Wave 2 marked this test xfail on a defect it found: after the broker's restart the volume
# service sometimes stopped answering calls ("no reply from volume.<host> for delete_volume").
# It has not recurred in 9 runs since (3 of them beside a CPU hog and two other test loads);
# the test is a plain one again, and a failure now carries the broker's queues and their
# consumers (broker_state_on_failure), so a lost subscription would show itself.
def test_services_survive_a_rabbitmq_crash_mid_operation(
    split: dict[str, Any], recovery: Callable[[str], Recovery], image_file: str, pg_url: str,
) -> None:
    with broker_state_on_failure(split["rabbit"]):
        _crash_mid_operation(split, recovery, image_file, pg_url)


def _crash_mid_operation(split: dict[str, Any], recovery: Callable[[str], Recovery],
                         image_file: str, pg_url: str) -> None:
    api: stackcore.Cloud = split["api"]
    rabbit: PrivateBackend = split["rabbit"]
    api.compute.create_flavor("small", 1, 256, 1)
    api.compute.register_image("img", image_file)
    poll(lambda: len([h for h in api.compute.list_hosts() if h.up]) == 2, 60,
         "both compute hosts up")
    poll(lambda: [p for p in api.volume.list_pools() if p.up and p.reporting], 60,
         "the volume pool reporting")
    names = itertools.count()
    created: dict[str, set[str]] = {"server": set(), "volume": set()}

    def step(thread: int, iteration: int, record: Callable[..., Any]) -> None:
        server = record("create_server", api.compute.create_server, f"mq-{next(names)}",
                        "small", "img", timeout=120)
        volume = record("create_volume", api.volume.create, 1, timeout=120)
        for kind, made in (("server", server), ("volume", volume)):
            if made is not None:
                created[kind].add(made.id)
        if volume is not None and volume.status == "available":
            snap = record("create_snapshot", api.volume.create_snapshot, volume.id,
                          timeout=120)
            if snap is not None:
                record("delete_snapshot", api.volume.delete_snapshot, snap.id)
        if server is not None:
            record("delete_server", api.compute.delete_server, server.id)
        if volume is not None:
            record("delete_volume", api.volume.delete, volume.id)

    workload = Workload(3, step).start()
    in_flight = []
    for crash in range(CRASHES):
        workload.wait_for(6 * (crash + 1), 180)
        in_flight.append(workload.in_flight)
        clock = recovery("rabbitmq")
        rabbit.kill()
        rabbit.start()
        clock.backend_back()

    def server_built() -> bool:
        try:
            server = api.compute.create_server("after", "small", "img", timeout=120)
        except stackcore.exception.StackcoreError:
            return False
        created["server"].add(server.id)
        return server.status == "ACTIVE"

    poll(server_built, 180, "a server built after the restart", interval=0.5)
    seconds = clock.service_back("a server was built (ACTIVE) through the services")
    workload.stop(3 * RPC_TIMEOUT + 120)
    assert sum(in_flight) > 0, "no call was in flight at any crash"
    for name, proc in split["procs"].items():
        assert proc.alive, f"{name} service died\n{proc.log_tail()}"

    engine = sa.create_engine(pg_url)
    try:
        assert not workload.foreign_errors(), workload.foreign_errors()
        # lost casts are picked up after rpc_call_timeout by the services' reconciliation
        poll(lambda: not transient_problems(engine), 4 * RPC_TIMEOUT + 60,
             "nothing left transient")
        assert fault_problems(engine, ("rabbit://", "RabbitMQ", "AMQP")) == []
        assert claim_problems(engine) == []
        assert duplicate_problems(engine) == []
        failed = [f"{o.op}: {o.detail}" for o in workload.failures()]
        with engine.connect() as conn:
            servers = set(conn.execute(sa.text("SELECT uuid FROM instances")).scalars())
            volumes = set(conn.execute(sa.text("SELECT id FROM volumes")).scalars())
            errors = conn.execute(sa.text(
                "SELECT (SELECT count(*) FROM instances WHERE vm_state = 'error') + "
                "(SELECT count(*) FROM volumes WHERE status LIKE 'error%')")).scalar_one()
        assert servers == created["server"], (servers ^ created["server"], failed)
        assert volumes == created["volume"], (volumes ^ created["volume"], failed)
        assert seconds < 120, f"a server was built only {seconds:.1f} s after the restart"
        print(f"\nrabbitmq: {CRASHES} crashes with {in_flight} calls in flight; workload "
              f"{workload.summary()}; {errors} server(s)/volume(s) ended in ERROR")
        for server in api.compute.list_servers():
            api.compute.delete_server(server.id)
        for volume in api.volume.list_volumes():
            for snap in api.volume.list_snapshots(volume.id):
                api.volume.delete_snapshot(snap.id)
            api.volume.delete(volume.id)
        poll(lambda: not api.compute.list_servers() and not api.volume.list_volumes(), 120,
             "everything deleted")
        assert list(Path(split["state"], "fake-volumes").rglob("volume-*")) == []
    finally:
        engine.dispose()
