"""Evacuation on real KVM: the compute service of a host dies while its guest keeps running
on its libvirtd (as when a compute process crashes or is fenced by stopping it); the server is
rebuilt on the other host of the two-libvirtd lab (tests/functional/compute/pair_cloud.py);
when the dead host's compute service comes back, it destroys its old domain and instance
directory and gives back the claim - the server itself is left alone on its new host."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from stackcore.compute import models

from .conftest import backend_env, libvirt
from .libvirt_pair import LabLibvirtd
from .pair_cloud import HOSTS, PairDeployment

pytestmark = pytest.mark.real


@pytest.fixture
def deployment(tmp_path: Path, libvirtd_pair: tuple[LabLibvirtd, LabLibvirtd],
               rabbit_url: str, pg_url: str) -> Iterator[PairDeployment]:
    # down 3 s after the last heartbeat (one a second): the test need not wait a minute
    found = PairDeployment(tmp_path, libvirtd_pair, rabbit_url, pg_url,
                           backend_env("STACKCORE_TEST_VIRT_TYPE", "libvirt"),
                           service_down_time=3)
    try:
        found.add_blank_image(tmp_path / "blank.qcow2", ram_mb=128)
        yield found
    finally:
        found.close()


def test_a_server_of_a_dead_compute_service_is_rebuilt_and_its_old_domain_removed(
        deployment: PairDeployment) -> None:
    api = deployment.api.compute
    server = api.create_server("evacuee <&>", "kvm.small", "blank")
    assert server.status == "ACTIVE", server.fault
    dead = server.host
    other = next(h for h in HOSTS if h != dead)
    name = f"instance-{server.id}"

    deployment.stop(dead)
    # the guest still runs on the dead host's hypervisor: only its compute service is gone
    assert deployment.domains(dead)[name][0] == libvirt.VIR_DOMAIN_RUNNING

    evacuated = api.evacuate_server(server.id)

    assert (evacuated.status, evacuated.host, evacuated.fault) == ("ACTIVE", other, None), \
        evacuated
    state, persistent, files, owner = deployment.domains(other)[name]
    assert (state, persistent, owner) == (libvirt.VIR_DOMAIN_RUNNING, True, other)
    other_dir = str(deployment.pair[other].instances_path / server.id)
    assert files and all(f.startswith(other_dir + "/") for f in files), (files, other_dir)
    assert name in deployment.domains(dead), "the old domain waits for its host to come back"

    deployment.start(dead)  # start-up: the evacuated server's old domain goes first
    deployment.await_hosts({dead}, up=True)

    assert deployment.domains(dead) == {}, deployment.domains(dead)
    assert not (deployment.pair[dead].instances_path / server.id).exists()
    assert deployment.domains(other)[name][0] == libvirt.VIR_DOMAIN_RUNNING
    [migration] = api.list_server_migrations(server.id)
    assert (migration.migration_type, migration.status) == ("evacuation", "completed")
    with deployment.api.db.read() as session:
        claims = {a.instance_uuid: a.host for a in session.execute(
            sa.select(models.Allocation)).scalars()}
    assert claims == {server.id: other}, claims
    api.delete_server(server.id)
    assert deployment.domains(other) == {}
