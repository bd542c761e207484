"""Quota races through the public API: 8 processes x 4 threads creating servers (and volumes)
for one project on PostgreSQL (servers on MariaDB too: its quota lock is a locked row) end
exactly at the limit, and usage equals the rows after failures, deletes and a restart."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import uuid

import pytest

import stackcore
from stackcore import exception
from stackcore.project import RequestContext
from tests.conftest import SERVER_DATABASES

pytestmark = pytest.mark.rabbit

PROJECT = RequestContext(user_id="u", project_id="racers", roles=["member"])
LIMIT = 10


def _overrides(pg_url: str, rabbit_url: str, hosts: list[str]) -> dict:
    found = {"DEFAULT": {"transport_url": rabbit_url, "periodic_interval": 3600,
                         "rpc_call_timeout": 120},
             "database": {"connection": pg_url},
             "compute": {"hosts": hosts}}
    if hosts:  # the process running the compute hosts
        found["fake_hypervisor"] = {"vcpus": 64, "memory_mb": 65536, "local_gb": 1000}
    return found


def _create_many(pg_url: str, rabbit_url: str, what: str, count: int) -> tuple[int, int]:
    """In a worker process: ``count`` creates from 4 threads; (won, over quota)."""
    cloud = stackcore.Cloud(services=(), overrides=_overrides(pg_url, rabbit_url, []))
    api = cloud.as_project(PROJECT)

    def one(_: int) -> str:
        try:
            if what == "servers":
                api.compute.create_server("s", "tiny", "pub", wait=False)
            else:
                api.volume.create(1, wait=False)
        except exception.OverQuota:
            return "over"
        return "won"

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(one, range(count)))
    cloud.close()
    return outcomes.count("won"), outcomes.count("over")


@pytest.mark.parametrize(("database", "what"), [
    pytest.param("postgresql", "servers", marks=pytest.mark.postgres, id="postgresql-servers"),
    pytest.param("postgresql", "volumes", marks=pytest.mark.postgres, id="postgresql-volumes"),
    pytest.param("mariadb", "servers", marks=pytest.mark.mysql, id="mariadb-servers")])
def test_eight_processes_end_exactly_at_the_limit(request, tmp_path, image_file, database,
                                                  what) -> None:
    pg_url = request.getfixturevalue(SERVER_DATABASES[database])
    rabbit_url = pytest.importorskip("os").environ["STACKCORE_TEST_RABBIT_URL"]
    hosts = [f"race-{uuid.uuid4().hex[:6]}-{i}" for i in range(2)]
    with stackcore.Cloud(overrides={**_overrides(pg_url, rabbit_url, hosts), "DEFAULT": {
            **_overrides(pg_url, rabbit_url, hosts)["DEFAULT"],
            "state_path": str(tmp_path)}}) as cloud:
        cloud.tick()
        cloud.compute.create_flavor("tiny", 1, 64, 0)
        cloud.compute.register_image("pub", image_file, "raw", visibility="public")
        resource = "instances" if what == "servers" else "volumes"
        cloud.project.set_quota("racers", resource, LIMIT)
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(8, mp_context=context) as pool:
            results = list(pool.map(_create_many, [pg_url] * 8, [rabbit_url] * 8,
                                    [what] * 8, [3] * 8))
        won, over = sum(r[0] for r in results), sum(r[1] for r in results)
        usage = cloud.project.get_quotas("racers")[resource]
        if what == "servers":
            rows = cloud.compute.list_servers(all_projects=True)
        else:
            rows = cloud.volume.list_volumes(all_projects=True)
        assert (won, over, usage.in_use, len(rows)) == (LIMIT, 24 - LIMIT, LIMIT, LIMIT), \
            f"won {won}, refused {over}, usage {usage.in_use}, rows {len(rows)}, limit {LIMIT}"


@pytest.mark.postgres
def test_usage_equals_rows_after_failures_deletes_and_restart(make_cloud, image_file,
                                                             tmp_path) -> None:
    overrides = {"DEFAULT": {"state_path": str(tmp_path / "state")}}
    cloud = make_cloud(fake_hosts=2, overrides=overrides)
    cloud.compute.create_flavor("small", 1, 512, 1)
    api = cloud.as_project(PROJECT)
    cloud.compute.register_image("pub", image_file, "raw", visibility="public")
    cloud.project.set_quota("racers", "instances", 3)
    cloud.project.set_quota("racers", "cores", 2)
    servers = [api.compute.create_server(f"s{i}", "small", "pub") for i in range(2)]
    with pytest.raises(exception.OverQuota) as caught:
        api.compute.create_server("third", "small", "pub")
    assert (caught.value.resource, caught.value.requested, caught.value.used,
            caught.value.limit) == ("cores", 1, 2, 2), caught.value.kwargs
    assert len(api.compute.list_servers()) == 2, "the refused server was persisted"
    api.compute.delete_server(servers[0].id)
    usage = api.project.get_quotas()
    assert (usage["instances"].in_use, usage["cores"].in_use) == (1, 1), usage
    api.compute.create_server("again", "small", "pub")  # the usage came back
    cloud.compute.create_flavor("huge", 4096, 512, 1)
    cloud.project.set_quota("racers", "cores", -1)
    failed = api.compute.create_server("no-host", "huge", "pub")
    assert failed.status == "ERROR"  # counted until deleted (Nova's rule)
    assert api.project.get_quotas()["instances"].in_use == 3
    api.compute.delete_server(failed.id)
    assert api.project.get_quotas()["instances"].in_use == 2
    cloud.close()

    restarted = make_cloud(fake_hosts=2, overrides=overrides).as_project(PROJECT)
    usage = restarted.project.get_quotas()
    rows = restarted.compute.list_servers()
    assert (usage["instances"].in_use, usage["instances"].limit, len(rows)) == (2, 3, 2), \
        f"after a restart: usage {usage['instances']}, rows {[r.name for r in rows]}"
    restarted.compute.create_server("last", "small", "pub")
    with pytest.raises(exception.OverQuota):
        restarted.compute.create_server("over", "small", "pub")
