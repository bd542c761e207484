"""The compute family's countable resources, counted from its rows (see
:mod:`stackcore.project.quota`). Every ``[quota]`` default is -1 (unlimited): a deployment
serving several projects sets its limits (Nova's defaults: 10 instances, 20 cores, 51200 MB
RAM, 10 server groups, 100 keypairs - per user in Nova, per project here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import BindParameter, ColumnElement

from stackcore.project.resources import UNLIMITED, Resource

_HERE = "stackcore.compute.quotas"

RESOURCES = [
    Resource("instances", UNLIMITED, "Servers per project", f"{_HERE}:count"),
    Resource("cores", UNLIMITED, "vCPUs of a project's servers", f"{_HERE}:count"),
    Resource("ram", UNLIMITED, "MB of RAM of a project's servers", f"{_HERE}:count"),
    Resource("server_groups", UNLIMITED, "Server groups per project", f"{_HERE}:count"),
    Resource("key_pairs", UNLIMITED, "Keypairs created in a project (by any of its users)",
             f"{_HERE}:count"),
]


def count(project_id: str | BindParameter[str], resource: str) -> ColumnElement[int]:
    """Usage of ``resource`` by ``project_id``: servers not deleted (whatever their state,
    ERROR included - Nova's rule), their vCPUs and RAM, the server groups, the keypairs created
    in the project."""
    import sqlalchemy as sa

    from stackcore.compute import models
    from stackcore.compute.placement import models as placement_models
    from stackcore.compute.states import VmState

    if resource == "key_pairs":
        return sa.select(sa.func.count()).select_from(models.KeyPair).where(
            models.KeyPair.project_id == project_id).scalar_subquery()
    if resource == "server_groups":
        group = placement_models.ServerGroup
        return sa.select(sa.func.count()).select_from(group).where(
            group.project_id == project_id).scalar_subquery()
    instance = models.Instance
    measure = {"instances": sa.func.count(), "cores": sa.func.sum(instance.vcpus),
               "ram": sa.func.sum(instance.memory_mb)}[resource]
    return sa.select(sa.func.coalesce(measure, 0)).where(
        instance.project_id == project_id, instance.vm_state != VmState.DELETED
    ).scalar_subquery()
