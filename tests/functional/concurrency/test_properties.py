"""Concurrency invariants as property tests: hypothesis state machines over the public API on
PostgreSQL (IP allocation on MariaDB too: segment allocation is hammered on MariaDB by
test_segment_stress, and CI's time is shared), each step a round of operations run by
several worker processes at once.

Hypothesis chooses, per step, what each of :data:`WORKERS` processes does (create, delete -
often the same resource from two workers at once - provider IDs inside and outside the range,
sizes that exhaust the capacity); after every step the database is checked against the
invariants of the family and against the model the results imply. A failure prints the
rounds that led to it.

Budget (CI): ``STACKCORE_PROPERTY_EXAMPLES`` state machines (default 15) of at most
``STACKCORE_PROPERTY_STEPS`` rounds (default 10) per family.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import stackcore
from tests.conftest import SERVER_DATABASES, backend_env
from tests.functional.concurrency.invariants import ip_problems, segment_problems
from tests.functional.concurrency.pool import WorkerPool

pytestmark = pytest.mark.real

WORKERS = 3
EXAMPLES = int(os.environ.get("STACKCORE_PROPERTY_EXAMPLES", "15"))
STEPS = int(os.environ.get("STACKCORE_PROPERTY_STEPS", "10"))
# Not shrunk: rounds run by several processes do not replay exactly (who wins a race differs),
# so hypothesis prints the failing example's rounds as they ran.
SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                    database=None, suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])


def _plan(kinds: list[str], max_ops: int = 4) -> st.SearchStrategy[list[list[tuple[str, int]]]]:
    """Per worker, a list of ``(kind, n)``: ``n`` picks an ID, a size or a resource."""
    op = st.tuples(st.sampled_from(kinds), st.integers(0, 63))
    return st.lists(st.lists(op, min_size=1, max_size=max_ops), min_size=WORKERS,
                    max_size=WORKERS)


def _pick(held: list[str], n: int) -> str | None:
    return held[n % len(held)] if held else None


def _check_outcomes(batches: list[list[dict]], results: list[list[dict]],
                    allowed: dict[str, set[str]]) -> None:
    for batch, answers in zip(batches, results, strict=True):
        for op, answer in zip(batch, answers, strict=True):
            error = answer.get("error")
            assert error is None or error in allowed.get(op["op"], set()), (
                f"{op} -> {error}: {answer.get('message')}")


class _Machine(RuleBasedStateMachine):
    """Shared by the families: a worker pool and an engine, set on the subclass."""

    pool: WorkerPool
    engine: sa.Engine
    counts: dict[str, int]

    def run(self, batches: list[list[dict]], allowed: dict[str, set[str]]
            ) -> list[list[dict]]:
        self.counts["rounds"] += 1
        self.counts["operations"] += sum(len(b) for b in batches)
        results = self.pool.run(batches)
        _check_outcomes(batches, results, allowed)
        return results

    def clean_up(self, op: str, ids: Any) -> None:
        """Delete what the example made (every delete must succeed): the next example starts
        from an empty cloud."""
        batch = [{"op": op, "id": i} for i in sorted(ids)]
        _check_outcomes([batch], self.pool.run([batch] + [[] for _ in range(WORKERS - 1)])[:1],
                        {})

    def scalars(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).scalars())


def _run_machine(machine: type[_Machine], pool: WorkerPool, engine: sa.Engine,
                 what: str) -> None:
    machine.pool, machine.engine = pool, engine
    machine.counts = {"rounds": 0, "operations": 0}
    started = time.monotonic()
    run_state_machine_as_test(machine, settings=SETTINGS)
    retries: dict[str, int] = {}
    for answer in pool.run([[{"op": "retry_counts"}]] * WORKERS):
        for name, count in answer[0]["ok"].items():
            retries[name] = retries.get(name, 0) + count
    print(f"\nproperty {what}: {EXAMPLES} state machines, {machine.counts['rounds']} rounds "
          f"of {WORKERS} processes, {machine.counts['operations']} operations, invariants "
          f"after each; {time.monotonic() - started:.1f} s; database conflicts retried "
          f"{retries or 0}")


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres),
                        pytest.param("mariadb", marks=pytest.mark.mysql)])
def server_url(request: pytest.FixtureRequest) -> str:
    """A fresh PostgreSQL or MariaDB database."""
    url: str = request.getfixturevalue(SERVER_DATABASES[request.param])
    return url


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(pg_url)
    yield eng
    eng.dispose()


@pytest.fixture
def server_engine(server_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(server_url)
    yield eng
    eng.dispose()


# --- segments --------------------------------------------------------------------------------

VNI_FIRST, VNI_LAST = 1, 24


@pytest.mark.postgres
def test_segment_allocation_properties(pg_url: str, engine: sa.Engine, tmp_path: Path) -> None:
    overrides = {"database": {"connection": pg_url},
                 "DEFAULT": {"state_path": str(tmp_path / "state")},
                 "ml2_type_vxlan": {"vni_ranges": [f"{VNI_FIRST}:{VNI_LAST}"]}}
    with stackcore.Cloud(overrides=overrides, services=()):
        pass

    class Segments(_Machine):
        def __init__(self) -> None:
            super().__init__()
            self.networks: set[str] = set()

        @rule(plan=_plan(["create", "create", "provider", "delete", "delete", "churn"]))
        def round(self, plan: list[list[tuple[str, int]]]) -> None:
            held = sorted(self.networks)
            batches = []
            for ops in plan:
                batch: list[dict] = []
                for kind, n in ops:
                    victim = _pick(held, n)
                    if kind == "delete" and victim:
                        batch.append({"op": "network_delete", "id": victim})
                    elif kind == "provider":  # 1..32: some outside the range
                        batch.append({"op": "network_create", "segmentation_id": 1 + n % 32})
                    elif kind == "churn":
                        batch.append({"op": "network_churn"})
                    else:
                        batch.append({"op": "network_create"})
                batches.append(batch)
            results = self.run(batches, {
                "network_create": {"NoNetworkAvailable", "SegmentIdInUse"},
                "network_churn": {"NoNetworkAvailable"}})
            for batch, answers in zip(batches, results, strict=True):
                for op, answer in zip(batch, answers, strict=True):
                    if op["op"] == "network_create" and "ok" in answer:
                        self.networks.add(answer["ok"]["id"])
                    elif op["op"] == "network_delete":
                        self.networks.discard(op["id"])

        @invariant()
        def free_xor_allocated(self) -> None:
            problems = segment_problems(self.engine, "vxlan", VNI_FIRST, VNI_LAST)
            assert not problems, "; ".join(problems)

        @invariant()
        def networks_are_what_the_calls_said(self) -> None:
            stored = set(self.scalars("SELECT id FROM networks"))
            assert stored == self.networks, (f"unexpected {stored - self.networks}, "
                                             f"missing {self.networks - stored}")

        def teardown(self) -> None:
            self.clean_up("network_delete", self.networks)

    with WorkerPool(WORKERS, {"overrides": overrides}) as pool:
        _run_machine(Segments, pool, engine, "segments")


# --- IP allocation ---------------------------------------------------------------------------

def test_ip_allocation_properties(server_url: str, server_engine: sa.Engine,
                                  tmp_path: Path) -> None:
    """Two subnets of 5 usable addresses each (a /29 and a /125): ports created and deleted
    concurrently get one address of each, never one twice, and exhaustion is clean."""
    overrides = {"database": {"connection": server_url},
                 "DEFAULT": {"state_path": str(tmp_path / "state")}}
    with stackcore.Cloud(overrides=overrides, services=()) as cloud:
        net = cloud.network.create_network("ips")
        v4 = cloud.network.create_subnet(net.id, "10.9.0.0/29")
        v6 = cloud.network.create_subnet(net.id, "fd09::/125")
    pool_size = {v4.id: 5, v6.id: 5}

    class Addresses(_Machine):
        def __init__(self) -> None:
            super().__init__()
            self.ports: set[str] = set()

        @rule(plan=_plan(["create", "create", "delete"]))
        def round(self, plan: list[list[tuple[str, int]]]) -> None:
            held = sorted(self.ports)
            batches = [[{"op": "port_delete", "id": victim}
                        if kind == "delete" and (victim := _pick(held, n))
                        else {"op": "port_create", "network_id": net.id}
                        for kind, n in ops] for ops in plan]
            results = self.run(batches, {"port_create": {"IpAddressExhausted"}})
            for batch, answers in zip(batches, results, strict=True):
                for op, answer in zip(batch, answers, strict=True):
                    if op["op"] == "port_create" and "ok" in answer:
                        self.ports.add(answer["ok"]["id"])
                        assert len(answer["ok"]["ips"]) == 2, answer
                    elif op["op"] == "port_delete":
                        self.ports.discard(op["id"])

        @invariant()
        def every_port_one_address_per_subnet_none_twice(self) -> None:
            problems = ip_problems(self.engine)
            with self.engine.connect() as conn:
                rows = conn.execute(sa.text(
                    "SELECT p.id, a.subnet_id, a.ip_address FROM ports p "
                    "LEFT JOIN ip_allocations a ON a.port_id = p.id")).all()
                orphans = conn.execute(sa.text(
                    "SELECT count(*) FROM ip_allocations a LEFT JOIN ports p "
                    "ON p.id = a.port_id WHERE p.id IS NULL")).scalar_one()
            per_port: dict[str, set[str]] = {}
            for port_id, subnet_id, _ in rows:
                per_port.setdefault(port_id, set()).add(subnet_id)
            assert set(per_port) == self.ports, "ports are not what the calls said"
            bad = {p: s for p, s in per_port.items() if s != set(pool_size)}
            assert not bad, f"ports without one address per subnet: {bad}"
            assert orphans == 0, f"{orphans} addresses held by no port"
            assert len(self.ports) <= min(pool_size.values())
            assert not problems, "; ".join(problems)

        def teardown(self) -> None:
            self.clean_up("port_delete", self.ports)

    with WorkerPool(WORKERS, {"overrides": overrides}) as pool:
        _run_machine(Addresses, pool, server_engine, "IP allocation")


# --- volume capacity and compute claims (services in their own process, over RabbitMQ) -----

CAPACITY_GB = 12
HOSTS = {"prop-1": 4, "prop-2": 4}  # vCPUs each (allocation ratio 1.0)


@pytest.fixture
def services(pg_url: str, tmp_path: Path, image_file: str
             ) -> Iterator[Callable[[], dict[str, Any]]]:
    """The scheduler, two fake compute hosts and the fake volume backend in one process; the
    overrides API-only workers use to reach them."""
    rabbit = backend_env("STACKCORE_TEST_RABBIT_URL", "rabbitmq")
    common = {"database": {"connection": pg_url},
              "DEFAULT": {"transport_url": rabbit, "rpc_call_timeout": 60}}
    service_overrides = {
        **common,
        # statistics every second: each report recomputes the pools' claims, concurrently
        # with the claims and releases of the workers
        "DEFAULT": {**common["DEFAULT"], "state_path": str(tmp_path / "services"),
                    "periodic_interval": 1},
        "compute": {"hosts": list(HOSTS)},
        "fake_hypervisor": {"vcpus": 4, "memory_mb": 8192, "local_gb": 100},
        "scheduler": {"cpu_allocation_ratio": 1.0, "ram_allocation_ratio": 1.0,
                      "disk_allocation_ratio": 1.0},
        "fake": {"fake_total_capacity_gb": str(CAPACITY_GB),
                 "max_over_subscription_ratio": "1.0"},
    }
    with WorkerPool(1, {"overrides": service_overrides,
                        "services": ["volume", "scheduler", "compute"]}):
        api_overrides = {**common, "DEFAULT": {**common["DEFAULT"],
                                               "state_path": str(tmp_path / "api")}}
        with stackcore.Cloud(overrides=api_overrides, services=()) as api:
            api.compute.create_flavor("one", 1, 512, 1)
            api.compute.create_flavor("two", 2, 512, 1)
            api.compute.register_image("img", image_file)
            stackcore_wait_pools(api)
        yield lambda: api_overrides


def stackcore_wait_pools(api: stackcore.Cloud) -> None:
    deadline = time.monotonic() + 60
    while not [p for p in api.volume.list_pools() if p.up and p.reporting]:
        assert time.monotonic() < deadline, "the fake volume pool never reported"
        time.sleep(0.1)


@pytest.mark.postgres
def test_volume_capacity_claim_properties(services, engine: sa.Engine) -> None:
    class Capacity(_Machine):
        def __init__(self) -> None:
            super().__init__()
            self.volumes: dict[str, int] = {}

        @rule(plan=_plan(["create", "create", "delete"], max_ops=3))
        def round(self, plan: list[list[tuple[str, int]]]) -> None:
            held = sorted(self.volumes)
            batches = [[{"op": "volume_delete", "id": victim}
                        if kind == "delete" and (victim := _pick(held, n))
                        else {"op": "volume_create", "size": 1 + n % 5}
                        for kind, n in ops] for ops in plan]
            results = self.run(batches, {"volume_create": {"NoValidHost"}})
            for batch, answers in zip(batches, results, strict=True):
                for op, answer in zip(batch, answers, strict=True):
                    if op["op"] == "volume_create" and "ok" in answer:
                        assert answer["ok"]["status"] == "available", answer
                        self.volumes[answer["ok"]["id"]] = op["size"]
                    elif op["op"] == "volume_delete":
                        self.volumes.pop(op["id"], None)

        @invariant()
        def claims_are_the_volumes(self) -> None:
            with self.engine.connect() as conn:
                live = dict(conn.execute(sa.text(
                    "SELECT id, allocated_gb FROM volumes WHERE status <> 'deleted'")).all())
                transient = conn.execute(sa.text(
                    "SELECT id, status FROM volumes WHERE status NOT IN "
                    "('available', 'deleted', 'error')")).all()
                claimed = conn.execute(sa.text(
                    "SELECT coalesce(sum(allocated_capacity_gb), 0) FROM volume_pools")
                ).scalar_one()
                held_by_deleted = conn.execute(sa.text(
                    "SELECT count(*) FROM volumes WHERE status = 'deleted' "
                    "AND allocated_gb <> 0")).scalar_one()
            assert not transient, f"volumes left transient: {transient}"
            assert live == self.volumes, "volumes (and what they hold) are not what the calls said"
            assert claimed == sum(live.values()), f"pool claims {claimed} != held {live}"
            assert claimed <= CAPACITY_GB, f"{claimed} GiB claimed of {CAPACITY_GB}"
            assert held_by_deleted == 0

        def teardown(self) -> None:
            self.clean_up("volume_delete", self.volumes)

    with WorkerPool(WORKERS, {"overrides": services()}) as pool:
        _run_machine(Capacity, pool, engine, "volume capacity claims")


@pytest.mark.postgres
def test_compute_claim_properties(services, engine: sa.Engine) -> None:
    class Claims(_Machine):
        def __init__(self) -> None:
            super().__init__()
            self.servers: set[str] = set()

        @rule(plan=_plan(["one", "two", "delete"], max_ops=3))
        def round(self, plan: list[list[tuple[str, int]]]) -> None:
            held = sorted(self.servers)
            batches = [[{"op": "server_delete", "id": victim}
                        if kind == "delete" and (victim := _pick(held, n))
                        else {"op": "server_create", "flavor": "two" if kind == "two" else "one"}
                        for kind, n in ops] for ops in plan]
            results = self.run(batches, {})
            for batch, answers in zip(batches, results, strict=True):
                for op, answer in zip(batch, answers, strict=True):
                    if op["op"] == "server_create":
                        assert answer["ok"]["status"] in ("ACTIVE", "ERROR"), answer
                        self.servers.add(answer["ok"]["id"])
                    elif op["op"] == "server_delete":
                        self.servers.discard(op["id"])

        @invariant()
        def claims_are_the_servers_on_their_hosts(self) -> None:
            with self.engine.connect() as conn:
                servers = {r.uuid: r for r in conn.execute(sa.text(
                    "SELECT uuid, host, vm_state, task_state FROM instances"))}
                claims = dict(conn.execute(sa.text(
                    "SELECT instance_uuid, host FROM allocations")).all())
                nodes = {r.host: r for r in conn.execute(sa.text(
                    "SELECT host, vcpus, alloc_vcpus, alloc_instances FROM compute_nodes"))}
                per_host = dict(conn.execute(sa.text(
                    "SELECT host, sum(vcpus) FROM allocations GROUP BY host")).all())
            live = {u for u, r in servers.items() if r.vm_state != "deleted"}
            assert live == self.servers, "servers are not what the calls said"
            busy = [(u, r.vm_state, r.task_state) for u, r in servers.items()
                    if r.vm_state == "building" or r.task_state is not None]
            assert not busy, f"servers left transient: {busy}"
            for uuid, host in claims.items():
                assert uuid in live and servers[uuid].host == host, \
                    f"claim of {uuid} on {host}: server is {servers.get(uuid)}"
            active = [u for u in live if servers[u].vm_state == "active"]
            assert all(u in claims for u in active), "an ACTIVE server without a claim"
            for host, node in nodes.items():
                assert node.alloc_vcpus == int(per_host.get(host) or 0), \
                    f"{host}: counter {node.alloc_vcpus} != claims {per_host.get(host)}"
                assert node.alloc_vcpus <= node.vcpus, f"{host} overcommitted: {node}"

        def teardown(self) -> None:
            self.clean_up("server_delete", self.servers)

    with WorkerPool(WORKERS, {"overrides": services()}) as pool:
        _run_machine(Claims, pool, engine, "compute claims")
