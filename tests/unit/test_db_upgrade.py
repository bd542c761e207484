"""Upgrade in place: a database made by wave 1 (one revision graph, 0001_core ... 0400_e2e)
moves to the per-family Alembic branches without losing a row.

The wave-1 schema is built by the frozen wave-1 revisions, exactly as wave 1 built it; a Cloud
running on it *without* migrating (the schema is the same) fills it through the public API;
then a Cloud with ``auto_migrate`` re-labels it and everything reads back unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import stackcore
from stackcore.db import api as db_api
from stackcore.db.models import Base


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/wave1.sqlite"
    found: str = request.getfixturevalue("pg_url")
    return found


def _versions(db: db_api.Database) -> set[str]:
    with db.engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def _cloud(url: str, state: Path, migrate: bool) -> stackcore.Cloud:
    return stackcore.Cloud(fake_hosts=1, overrides={
        "DEFAULT": {"state_path": str(state), "periodic_interval": 3600},
        "database": {"connection": url, "auto_migrate": migrate},
    })


def test_wave1_database_upgrades_to_family_branches_without_loss(
        url: str, tmp_path: Path, image_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wave1 = db_api.Database(url)
    command.upgrade(wave1.alembic_config(legacy=True), "heads")
    assert _versions(wave1) == {"0100_network", "0200_volume", "0300_scheduler", "0400_e2e"}
    wave1.dispose()

    state = tmp_path / "state"
    # Filling the wave-1 database through today's API needs today's start-up to accept a
    # wave-1 schema without migrating it (the tables are the same); start-up refuses that by
    # design (tests/unit/test_conf_validation.py), so only this fixture step lifts the check.
    from stackcore.db import schema

    with monkeypatch.context() as patch:
        patch.setattr(schema, "check_current", lambda db: None)
        wave1_cloud = _cloud(url, state, migrate=False)
    with wave1_cloud as cloud:
        flavor = cloud.compute.create_flavor("m1", 1, 256, 1, {"hw:cpu": "1"})
        image = cloud.compute.register_image("cirros", image_file, "raw", {"os": "cirros"})
        agg = cloud.compute.create_aggregate("fast", {"ssd": "true"}, availability_zone="az1")
        group = cloud.compute.create_server_group("g", "anti-affinity")
        net = cloud.network.create_network("private")
        subnet = cloud.network.create_subnet(net.id, "10.0.0.0/24")
        vol = cloud.volume.create(1, name="data")
        snap = cloud.volume.create_snapshot(vol.id, name="s1")
        server = cloud.compute.create_server("web", "m1", "cirros", server_group=group.id,
                                             networks=[{"network_id": net.id}],
                                             volumes=[vol.id])
        assert server.status == "ACTIVE", server.fault
        before = {
            "flavor": cloud.compute.get_flavor("m1"),
            "image": cloud.compute.get_image(image.id),
            "aggregate": cloud.compute.get_aggregate(agg.id),
            "group": cloud.compute.get_server_group(group.id),
            "server": cloud.compute.get_server(server.id),
            "server_volumes": cloud.compute.list_server_volumes(server.id),
            "network": cloud.network.get_network(net.id),
            "subnet": cloud.network.get_subnet(subnet.id),
            "ports": cloud.network.list_ports(device_id=server.id),
            "volume": cloud.volume.get(vol.id),
            "snapshot": cloud.volume.get_snapshot(snap.id),
        }
    assert flavor == before["flavor"]

    with _cloud(url, state, migrate=True) as cloud:
        after = {
            "flavor": cloud.compute.get_flavor("m1"),
            "image": cloud.compute.get_image(image.id),
            "aggregate": cloud.compute.get_aggregate(agg.id),
            "group": cloud.compute.get_server_group(group.id),
            "server": cloud.compute.get_server(server.id),
            "server_volumes": cloud.compute.list_server_volumes(server.id),
            "network": cloud.network.get_network(net.id),
            "subnet": cloud.network.get_subnet(subnet.id),
            "ports": cloud.network.list_ports(device_id=server.id),
            "volume": cloud.volume.get(vol.id),
            "snapshot": cloud.volume.get_snapshot(snap.id),
        }
        for key, value in before.items():
            assert after[key] == value, f"{key} changed by the upgrade: {value!r} -> {after[key]!r}"
        # The upgraded database still works: the server can be deleted, the volume freed.
        cloud.compute.delete_server(server.id)
        assert cloud.volume.get(vol.id).status == "available"

    upgraded = db_api.Database(url)
    try:
        assert _versions(upgraded) == {"project_0001", "image_0001", "compute_0001", "volume_0001",
                                       "network_0001"}, "not re-labelled to the family heads"
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
        assert _versions(db) == {"project_0001", "image_0001", "compute_0001", "volume_0001",
                                 "network_0001"}
    finally:
        db.dispose()
