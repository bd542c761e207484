"""The filter scheduler through the compute API: aggregates, server groups, explain, retries,
NoValidHost sentences. Runs on SQLite and PostgreSQL (the ``make_cloud`` fixture)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from stackcore import exception
from stackcore.compute import models
from stackcore.compute.placement import models as sched_models


@pytest.fixture
def cloud4(make_cloud, image_file):
    cloud = make_cloud(fake_hosts=4)
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file, "raw", {"architecture": "x86_64"})
    return cloud


def test_aggregate_extra_specs_steer_servers(cloud4) -> None:
    c = cloud4.compute
    agg = c.create_aggregate("ssd")
    c.add_host(agg.name, "compute-3")
    c.set_metadata("ssd", {"ssd": "true"})
    assert c.get_aggregate("ssd").hosts == ("compute-3",)
    c.create_flavor("fast", 1, 512, 1, {"aggregate_instance_extra_specs:ssd": "true"})
    for i in range(3):
        assert c.create_server(f"f{i}", "fast", "img").host == "compute-3"
    c.set_metadata("ssd", {"ssd": None})
    server = c.create_server("none", "fast", "img")
    assert server.status == "ERROR"
    assert "AggregateInstanceExtraSpecsFilter rejected 4 host(s)" in server.fault.message
    with pytest.raises(exception.Conflict):
        c.delete_aggregate("ssd")
    c.remove_host("ssd", "compute-3")
    c.delete_aggregate("ssd")
    c.delete_aggregate("ssd")  # idempotent
    with pytest.raises(exception.NotFound):
        c.get_aggregate("ssd")


def test_aggregate_zone_overrides_service_zone(cloud4) -> None:
    c = cloud4.compute
    c.create_aggregate("edge", availability_zone="edge")
    c.add_host("edge", "compute-2")
    assert c.create_server("e", "small", "img", availability_zone="edge").host == "compute-2"


def test_anti_affinity_spreads_then_refuses(cloud4) -> None:
    c = cloud4.compute
    group = c.create_server_group("spread", "anti-affinity")
    hosts = [c.create_server(f"a{i}", "small", "img", server_group=group.id).host
             for i in range(4)]
    assert sorted(hosts) == ["compute-1", "compute-2", "compute-3", "compute-4"]
    fifth = c.create_server("a5", "small", "img", server_group=group.id)
    assert fifth.status == "ERROR"
    assert "ServerGroupAntiAffinityFilter rejected 4 host(s)" in fifth.fault.message
    assert len(c.get_server_group(group.id).members) == 5


def test_anti_affinity_rule_allows_two_per_host(cloud4) -> None:
    c = cloud4.compute
    group = c.create_server_group("two", "anti-affinity", max_server_per_host=2)
    hosts = [c.create_server(f"t{i}", "small", "img", server_group=group.id).host
             for i in range(8)]
    assert sorted(set(hosts)) == ["compute-1", "compute-2", "compute-3", "compute-4"]
    assert all(hosts.count(h) == 2 for h in set(hosts))
    with pytest.raises(exception.Invalid):
        c.create_server_group("bad", "affinity", max_server_per_host=2)


def test_affinity_and_soft_affinity_pack(cloud4) -> None:
    c = cloud4.compute
    hard = c.create_server_group("pack", "affinity")
    assert len({c.create_server(f"p{i}", "small", "img", server_group=hard.id).host
                for i in range(3)}) == 1
    soft = c.create_server_group("soft", "soft-affinity")
    cloud4.conf.set_override("soft_affinity_weight_multiplier", 100.0, group="scheduler")
    assert len({c.create_server(f"s{i}", "small", "img", server_group=soft.id).host
                for i in range(3)}) == 1
    with pytest.raises(exception.Invalid):
        c.create_server_group("x", "sometimes")
    with pytest.raises(exception.NotFound):
        c.create_server("orphan", "small", "img",
                        server_group="00000000-0000-0000-0000-000000000000")


def test_explain_gives_trace_and_ranking_without_claiming(cloud4) -> None:
    c = cloud4.compute
    c.set_host_enabled("compute-4", False, "maintenance")
    report = c.explain_placement("small", "img")
    assert report["candidates"] == 4 and report["passed"] == 3
    first = report["filters"][0]
    assert first["name"] == "ComputeFilter" and first["rejected"] == 1
    assert first["reason"] == "service disabled (maintenance)"
    assert [r["host"] for r in report["ranking"]] == ["compute-1", "compute-2", "compute-3"]
    assert set(report["ranking"][0]["weights"]) >= {"RAMWeigher", "CPUWeigher"}
    assert all(h.allocated["instances"] == 0 for h in c.list_hosts())
    c.create_flavor("huge", 1, 10**7, 1)
    huge = c.explain_placement("huge", "img")
    assert huge["passed"] == 0
    assert any(r.startswith("RamFilter rejected 3 host(s): needs 10000000 MB, the best had")
               for r in huge["reasons"])


def test_failed_spawn_is_rescheduled_to_an_alternate(make_cloud, image_file) -> None:
    cloud = make_cloud(fake_hosts=3,
                       overrides={"fake_hypervisor": {"fail_on": ["spawn:compute-1"]}})
    c = cloud.compute
    c.create_flavor("small", 1, 512, 1)
    c.register_image("img", image_file)
    server = c.create_server("retry", "small", "img")
    assert server.status == "ACTIVE" and server.host in ("compute-2", "compute-3")
    with cloud.db.transaction() as session:
        tried = session.execute(
            sa.select(sched_models.SchedulingAttempt.host, sched_models.SchedulingAttempt.reason)
            .where(sched_models.SchedulingAttempt.instance_uuid == server.id)
            .order_by(sched_models.SchedulingAttempt.id)).all()
        allocs = session.execute(sa.select(models.Allocation.host)).scalars().all()
    assert tried[0].host == "compute-1" and "injected failure" in tried[0].reason
    assert allocs == [server.host]  # the failed host's claim was given back


def test_retries_are_bounded_and_end_in_error(make_cloud, image_file) -> None:
    cloud = make_cloud(fake_hosts=4, overrides={
        "fake_hypervisor": {"fail_on": ["spawn"]}, "scheduler": {"max_attempts": 2}})
    c = cloud.compute
    c.create_flavor("small", 1, 512, 1)
    c.register_image("img", image_file)
    server = c.create_server("doomed", "small", "img")
    assert server.status == "ERROR" and server.task_state is None
    assert "injected failure" in server.fault.message
    with cloud.db.transaction() as session:
        tried = session.execute(sa.select(sched_models.SchedulingAttempt.host).where(
            sched_models.SchedulingAttempt.instance_uuid == server.id)).scalars().all()
        assert session.execute(sa.select(sa.func.count()).select_from(models.Allocation)
                               ).scalar_one() == 0
    assert len(tried) == 2 and len(set(tried)) == 2


def test_unknown_filter_name_fails_start_up(make_cloud) -> None:
    with pytest.raises(exception.PluginNotFound, match="NoSuchFilter"):
        make_cloud(fake_hosts=1, overrides={"scheduler": {"compute_filters": ["NoSuchFilter"]}})


def test_volume_filter_in_compute_list_is_refused(make_cloud) -> None:
    with pytest.raises(exception.PluginNotFound, match="CapacityFilter"):
        make_cloud(fake_hosts=1, overrides={"scheduler": {"compute_filters": ["CapacityFilter"]}})


#: the task states of resize, cold migration, rebuild, evacuation, snapshot and rescue, which
#: Nova's io_workload counts (a build and the deletes, reboots and power changes were counted
#: before)
_MOVE_AND_REBUILD_TASKS = ("resize_prep", "resize_migrating", "resize_finish",
                           "resize_confirming", "resize_reverting", "rebuilding",
                           "evacuating", "image_snapshot", "rescuing")


@pytest.mark.parametrize("task_state", _MOVE_AND_REBUILD_TASKS)
def test_a_server_resizing_rebuilding_or_evacuating_counts_as_an_io_op(
        make_cloud, image_file, task_state: str) -> None:
    """Each I/O-heavy task state counts in its host's num_io_ops: the IoOpsFilter refuses the
    host once max_io_ops_per_host is reached (its reason says so), the other host takes the
    next server; an idle or deleted server counts nothing."""
    from stackcore.compute.placement.manager import SchedulerManager
    from stackcore.compute.placement.opts import DEFAULT_FILTERS

    cloud = make_cloud(fake_hosts=2, overrides={"scheduler": {
        "max_io_ops_per_host": 1, "compute_filters": [*DEFAULT_FILTERS, "IoOpsFilter"]}})
    cloud.compute.create_flavor("small", 1, 512, 1)
    cloud.compute.register_image("img", image_file)
    busy = cloud.compute.create_server("busy", "small", "img")
    cloud.compute.create_server("idle", "small", "img")  # an idle server counts nothing
    scheduler = SchedulerManager(cloud.conf, cloud.db)

    def io_ops() -> dict[str, int]:
        states = scheduler.host_states()
        return {s.host: s.num_io_ops for s in states.states()}

    assert io_ops() == {"compute-1": 0, "compute-2": 0}, "idle servers count nothing"
    with cloud.db.transaction() as session:
        session.execute(sa.update(models.Instance).where(models.Instance.uuid == busy.id)
                        .values(task_state=task_state))
    expected = {"compute-1": 0, "compute-2": 0, busy.host: 1}
    assert io_ops() == expected, f"a server {task_state} on {busy.host}"
    decision = scheduler.explain({"vcpus": 1, "memory_mb": 512, "disk_gb": 1})
    assert [r["host"] for r in decision["ranking"]] == \
        [h for h in ("compute-1", "compute-2") if h != busy.host], decision
    assert any("IoOpsFilter rejected 1 host(s)" in r and "1 I/O operations" in r
               for r in decision["reasons"]), decision["reasons"]


def test_a_requested_host_is_the_only_candidate_and_its_refusal_names_it(make_cloud) -> None:
    """select_migration_destination with a ``requested_host`` (API 1.4): the filters run on
    that host alone; NoValidHost names it and says why, and nothing is claimed."""
    from stackcore.compute.placement.manager import SchedulerManager
    from stackcore.compute.placement.request import build

    cloud = make_cloud(fake_hosts=2)
    scheduler = SchedulerManager(cloud.conf, cloud.db)
    flavor = {"vcpus": 1, "ram_mb": 512, "disk_gb": 1}
    server, migration = "00000000-0000-0000-0000-0000000000a1", "m-1"
    cases = {
        "nowhere": "nowhere is no compute host",
        "compute-1": "compute-1 is excluded (the host the server is moved away from)",
    }
    for host, why in cases.items():
        request = build(flavor, exclude_hosts=("compute-1",), requested_host=host)
        with pytest.raises(exception.NoValidHost) as refused:
            scheduler.select_migration_destination(server, migration, request)
        assert str(refused.value) == f"host {host} cannot take server {server}: {why}", \
            refused.value
    huge = build({**flavor, "ram_mb": 10 ** 7}, exclude_hosts=("compute-1",),
                 requested_host="compute-2")
    with pytest.raises(exception.NoValidHost) as refused:
        scheduler.select_migration_destination(server, migration, huge)
    assert refused.value.kwargs["reasons"] == [
        "RamFilter: needs 10000000 MB, it had 49152 MB free"], refused.value
    with cloud.db.read() as session:
        assert session.execute(sa.select(models.Allocation)).scalars().all() == []
