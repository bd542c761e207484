"""The network family's countable resources, counted from its rows (see
:mod:`stackcore.project.quota`). Every ``[quota]`` default is -1 (unlimited) (Neutron's
defaults: 100 networks, 100 subnets, 500 ports)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import BindParameter, ColumnElement

from stackcore.project.resources import UNLIMITED, Resource

_HERE = "stackcore.network.quotas"

RESOURCES = [
    Resource("networks", UNLIMITED, "Networks per project", f"{_HERE}:count"),
    Resource("subnets", UNLIMITED, "Subnets per project", f"{_HERE}:count"),
    Resource("ports", UNLIMITED, "Ports per project", f"{_HERE}:count"),
    Resource("security_groups", UNLIMITED, "Security groups per project (Neutron: 10)",
             f"{_HERE}:count"),
    Resource("security_group_rules", UNLIMITED,
             "Security group rules per project (Neutron: 100)", f"{_HERE}:count"),
    Resource("routers", UNLIMITED, "Routers per project (Neutron: 10)", f"{_HERE}:count"),
    Resource("floatingips", UNLIMITED, "Floating IPs per project (Neutron: 50)",
             f"{_HERE}:count"),
]


def count(project_id: str | BindParameter[str], resource: str) -> ColumnElement[int]:
    import sqlalchemy as sa

    from stackcore.network import models

    column = {"networks": models.Network.project_id, "subnets": models.Subnet.project_id,
              "ports": models.Port.project_id,
              "security_groups": models.SecurityGroup.project_id,
              "security_group_rules": models.SecurityGroupRule.project_id,
              "routers": models.Router.project_id,
              "floatingips": models.FloatingIP.project_id}[resource]
    return sa.select(sa.func.count()).select_from(column.class_).where(
        column == project_id).scalar_subquery()
