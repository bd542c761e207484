"""Upgrade in place: a database made by wave 1 (one revision graph, 0001_core ... 0400_e2e)
moves to the per-family Alembic branches, and on to today's schema (owners, quotas), without
losing a row.

The wave-1 schema is built by the frozen wave-1 revisions, exactly as wave 1 built it, and
filled with rows as wave 1 wrote them (plain inserts into the wave-1 tables: today's code
cannot run on that schema). A Cloud with ``auto_migrate`` then upgrades it, and every row reads
back through today's API, owned by the admin project (the documented owner of rows made before
projects existed).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import stackcore
from stackcore.db import api as db_api
from stackcore.db.models import Base
from stackcore.db.schema import expected_heads
from tests.conftest import ALL_DATABASES, SERVER_DATABASES

NOW = datetime.datetime(2026, 11, 30, 12, 0, 0)
FLAVOR, IMAGE, SERVER = "f" * 8 + "-0000-4000-8000-000000000001", \
    "a" * 8 + "-0000-4000-8000-000000000002", "b" * 8 + "-0000-4000-8000-000000000003"
NETWORK, SUBNET, PORT = "c" * 8 + "-0000-4000-8000-000000000004", \
    "d" * 8 + "-0000-4000-8000-000000000005", "e" * 8 + "-0000-4000-8000-000000000006"
VTYPE, VOLUME, SNAPSHOT, GROUP = "1" * 8 + "-0000-4000-8000-000000000007", \
    "2" * 8 + "-0000-4000-8000-000000000008", "3" * 8 + "-0000-4000-8000-000000000009", \
    "4" * 8 + "-0000-4000-8000-00000000000a"


@pytest.fixture(params=ALL_DATABASES)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/wave1.sqlite"
    found: str = request.getfixturevalue(SERVER_DATABASES[request.param])
    return found


def _versions(db: db_api.Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def _fill_wave1(db: db_api.Database, image_path: str) -> None:
    """Rows as wave 1 wrote them (its columns only)."""
    meta = sa.MetaData()
    meta.reflect(db.engine)
    rows = {
        "flavors": [dict(id=FLAVOR, name="m1", vcpus=2, ram_mb=512, disk_gb=1,
                         extra_specs={"hw:cpu": "1"}, created_at=NOW)],
        "images": [dict(id=IMAGE, name="cirros", path=image_path, disk_format="raw",
                        size_bytes=1024, properties={"os": "cirros"}, created_at=NOW)],
        "instances": [dict(uuid=SERVER, name="web", flavor_id=FLAVOR,
                           flavor={"name": "m1", "vcpus": 2, "ram_mb": 512, "disk_gb": 1,
                                   "extra_specs": {"hw:cpu": "1"}},
                           image_id=IMAGE, availability_zone=None, metadata={"k": "v"},
                           host=None, vm_state="error", task_state=None, power_state=0,
                           created_at=NOW, updated_at=NOW, launched_at=None, deleted_at=None)],
        "instance_faults": [dict(instance_uuid=SERVER, exc_class="NoValidHost",
                                 message="no valid host", step="schedule", host=None,
                                 created_at=NOW)],
        "server_groups": [dict(id=GROUP, name="g", policy="anti-affinity", rules={},
                               created_at=NOW)],
        "server_group_members": [dict(instance_uuid=SERVER, group_id=GROUP)],
        "aggregates": [dict(id=1, name="fast", metadata={"ssd": "true"}, created_at=NOW)],
        "networks": [dict(id=NETWORK, name="private", admin_state_up=True, status="ACTIVE",
                          mtu=1450, revision=1, created_at=NOW, updated_at=NOW)],
        "subnets": [dict(id=SUBNET, network_id=NETWORK, name="", ip_version=4,
                         cidr="10.0.0.0/24", gateway_ip="10.0.0.1", enable_dhcp=True,
                         allocation_pools=[{"start": "10.0.0.2", "end": "10.0.0.254"}],
                         revision=0, created_at=NOW)],
        "volume_types": [dict(id=VTYPE, name="fast", description=None,
                              extra_specs={"provisioning:type": "thin"}, created_at=NOW)],
        "volumes": [dict(id=VOLUME, display_name="data", size=2, status="error",
                         volume_type_id=VTYPE, availability_zone="nova", metadata={},
                         host=None, pool=None, allocated_gb=0, multiattach=False,
                         snapshot_id=None, source_volid=None, image_id=None,
                         provider_location=None, provider_auth=None, driver_data={},
                         previous_status=None, created_at=NOW, updated_at=NOW,
                         deleted_at=None)],
        "volume_snapshots": [dict(id=SNAPSHOT, volume_id=VOLUME, display_name="s1",
                                  volume_size=2, status="error", metadata={},
                                  provider_location=None, driver_data={}, created_at=NOW,
                                  deleted_at=None)],
    }
    with db.engine.begin() as conn:
        for table, values in rows.items():
            target = meta.tables[table]
            known = {c.name for c in target.columns}
            for value in values:
                missing = set(value) - known
                assert not missing, f"{table} has no columns {missing} in wave 1"
                conn.execute(target.insert().values(**_reflected_json(target, value)))


def _reflected_json(table: sa.Table, row: dict) -> dict:
    """``row`` with its JSON values serialised for the columns reflection does not know as
    JSON: MariaDB's JSON is LONGTEXT with a json_valid() check."""
    return {name: json.dumps(value) if isinstance(value, dict | list)
            and not isinstance(table.c[name].type, sa.JSON) else value
            for name, value in row.items()}


def test_wave1_database_upgrades_without_loss(url: str, tmp_path: Path,
                                              image_file: str) -> None:
    wave1 = db_api.Database(url)
    command.upgrade(wave1.alembic_config(legacy=True), "heads")
    assert _versions(wave1) == {"0100_network", "0200_volume", "0300_scheduler", "0400_e2e"}
    _fill_wave1(wave1, image_file)
    wave1.dispose()

    with stackcore.Cloud(fake_hosts=1, overrides={
            "DEFAULT": {"state_path": str(tmp_path / "state"), "periodic_interval": 3600},
            "database": {"connection": url, "auto_migrate": True}}) as cloud:
        flavor = cloud.compute.get_flavor("m1")
        assert (flavor.id, flavor.vcpus, flavor.ram_mb, dict(flavor.extra_specs)) == \
            (FLAVOR, 2, 512, {"hw:cpu": "1"}), flavor
        image = cloud.compute.get_image(IMAGE)
        assert (image.name, image.path, dict(image.properties)) == \
            ("cirros", image_file, {"os": "cirros"}), image
        server = cloud.compute.get_server(SERVER)
        assert (server.name, server.status, dict(server.metadata)) == \
            ("web", "ERROR", {"k": "v"}), server
        assert server.fault is not None and server.fault.exc_class == "NoValidHost"
        assert cloud.compute.get_server_group(GROUP).members == (SERVER,)
        assert dict(cloud.compute.get_aggregate("fast").metadata) == {"ssd": "true"}
        network = cloud.network.get_network(NETWORK)
        assert (network.name, network.mtu) == ("private", 1450), network
        subnet = cloud.network.get_subnet(SUBNET)
        assert (subnet.cidr, subnet.gateway_ip) == ("10.0.0.0/24", "10.0.0.1"), subnet
        assert cloud.volume.get_type("fast").extra_specs == {"provisioning:type": "thin"}
        volume = cloud.volume.get(VOLUME)
        assert (volume.name, volume.size, volume.volume_type) == ("data", 2, "fast"), volume
        assert cloud.volume.get_snapshot(SNAPSHOT).name == "s1"
        # owned by the admin project, counted by its quotas
        usage = cloud.project.get_quotas("admin")
        assert (usage["instances"].in_use, usage["cores"].in_use, usage["ram"].in_use,
                usage["volumes"].in_use, usage["networks"].in_use) == (1, 2, 512, 1, 1), usage
        # the upgraded database still works: the server deletes, the network too
        cloud.compute.delete_server(SERVER)
        cloud.network.delete_network(NETWORK)

    upgraded = db_api.Database(url)
    try:
        assert _versions(upgraded) == expected_heads(upgraded), "not at every family's head"
        with upgraded.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], f"the upgraded schema differs from the models: {diff}"
    finally:
        upgraded.dispose()


def test_fresh_database_gets_one_head_per_family(tmp_path: Path) -> None:
    db = db_api.Database(f"sqlite:///{tmp_path}/fresh.sqlite")
    try:
        db.upgrade()
        assert _versions(db) == expected_heads(db)
        assert {"base_0002", "image_0004", "compute_0006", "volume_0005", "network_0006"} == \
            _versions(db)
    finally:
        db.dispose()
