"""Host aggregates and server groups: the part of ``cloud.compute`` the scheduler reads.

:class:`PlacementAPI` is mixed into :class:`stackcore.compute.api.ComputeAPI`, so callers use
``cloud.compute.create_aggregate(...)``, ``cloud.compute.create_server_group(...)`` and
``cloud.compute.create_server(..., server_group=...)``.

* An aggregate groups hosts and carries metadata: flavor extra specs are matched against it
  (``AggregateInstanceExtraSpecsFilter``), ``availability_zone`` in it sets its hosts' zone,
  and a key named like a weigher multiplier option overrides that multiplier for its hosts.
* A server group has one policy: ``affinity`` / ``anti-affinity`` (hard: filters) or
  ``soft-affinity`` / ``soft-anti-affinity`` (weighers); anti-affinity takes the rule
  ``max_server_per_host`` (default 1).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping

import sqlalchemy as sa

from stackcore import exception, schemas, validate
from stackcore import schemas as s
from stackcore.compute import schemas as cs
from stackcore.compute.placement import models
from stackcore.compute.placement.request import POLICIES
from stackcore.db import api as db_api
from stackcore.db import paging
from stackcore.project import policy
from stackcore.project.scope import ScopedAPI


@dataclasses.dataclass(frozen=True)
class Aggregate:
    id: int
    name: str
    hosts: tuple[str, ...]
    metadata: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class ServerGroup:
    id: str
    name: str
    policy: str
    rules: Mapping[str, int]
    members: tuple[str, ...]
    project_id: str = "admin"


class PlacementAPI(ScopedAPI):
    """Aggregates and server groups (mixed into ComputeAPI, which provides ``db``)."""

    db: db_api.Database

    # --- aggregates ------------------------------------------------------------------------

    def _aggregate_row(self, session: sa.orm.Session, name_or_id: str | int) -> models.Aggregate:
        query = sa.select(models.Aggregate)
        if isinstance(name_or_id, int) or str(name_or_id).isdigit():
            query = query.where(sa.or_(models.Aggregate.id == int(name_or_id),
                                       models.Aggregate.name == str(name_or_id)))
        else:
            query = query.where(models.Aggregate.name == name_or_id)
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            raise exception.NotFound("aggregate", str(name_or_id))
        return row

    def _aggregate_view(self, session: sa.orm.Session, row: models.Aggregate) -> Aggregate:
        hosts = session.execute(
            sa.select(models.AggregateHost.host)
            .where(models.AggregateHost.aggregate_id == row.id)
            .order_by(models.AggregateHost.host)
        ).scalars().all()
        return Aggregate(row.id, row.name, tuple(hosts), dict(row.metadata_))

    @schemas.accepts(name=s.NAME, metadata=s.optional(s.STRING_MAP),
                     availability_zone=s.optional(s.ZONE))
    @policy.authorize("compute:aggregate:manage")
    def create_aggregate(self, name: str, metadata: Mapping[str, str] | None = None,
                         availability_zone: str | None = None) -> Aggregate:
        """A new, empty host aggregate. ``availability_zone`` is stored as metadata."""
        validate.name("name", name)
        meta = validate.string_map("metadata", metadata)
        if availability_zone is not None:
            meta["availability_zone"] = validate.name("availability_zone", availability_zone)
        try:
            with self.db.transaction() as session:
                row = models.Aggregate(name=name, metadata_=meta)
                session.add(row)
                session.flush()
                return self._aggregate_view(session, row)
        except sa.exc.IntegrityError:
            raise exception.Conflict(f"an aggregate named {name!r} already exists") from None

    @schemas.accepts(name_or_id=cs.AGGREGATE)
    @policy.authorize("compute:aggregate:read")
    def get_aggregate(self, name_or_id: str | int) -> Aggregate:
        with self.db.transaction() as session:
            return self._aggregate_view(session, self._aggregate_row(session, name_or_id))

    @schemas.accepts(**paging.schema(cs.NAME_SORT_KEYS))
    @policy.authorize("compute:aggregate:read")
    def list_aggregates(self, *, limit: int | None = None, marker: str | None = None,
                        sort_key: str = "name", sort_dir: str = "asc") -> list[Aggregate]:
        """Aggregates, ``limit`` at a time after the aggregate (id) ``marker``."""
        agg = models.Aggregate
        with self.db.transaction() as session:
            query = paging.page(session, sa.select(agg), agg.id, {"name": agg.name, "id": agg.id},
                                limit=limit, marker=int(marker) if marker and marker.isdigit()
                                else marker, sort_key=sort_key, sort_dir=sort_dir,
                                resource="aggregate")
            return [self._aggregate_view(session, r)
                    for r in session.execute(query).scalars().all()]

    @schemas.accepts(aggregate=cs.AGGREGATE, host=s.HOST)
    @policy.authorize("compute:aggregate:manage")
    def add_host(self, aggregate: str | int, host: str) -> Aggregate:
        """Put ``host`` (a compute host name) in the aggregate; adding it twice is a no-op."""
        validate.name("host", host)
        with self.db.transaction() as session:
            row = self._aggregate_row(session, aggregate)
            exists = session.execute(sa.select(models.AggregateHost).where(
                models.AggregateHost.aggregate_id == row.id,
                models.AggregateHost.host == host)).scalar_one_or_none()
            if exists is None:
                session.add(models.AggregateHost(aggregate_id=row.id, host=host))
                session.flush()
            return self._aggregate_view(session, row)

    @schemas.accepts(aggregate=cs.AGGREGATE, host=s.HOST)
    @policy.authorize("compute:aggregate:manage")
    def remove_host(self, aggregate: str | int, host: str) -> Aggregate:
        """Take ``host`` out of the aggregate; NotFound if it is not in it."""
        with self.db.transaction() as session:
            row = self._aggregate_row(session, aggregate)
            result = session.execute(sa.delete(models.AggregateHost).where(
                models.AggregateHost.aggregate_id == row.id, models.AggregateHost.host == host))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise exception.NotFound("aggregate host", host)
            return self._aggregate_view(session, row)

    @schemas.accepts(aggregate=cs.AGGREGATE, metadata=s.string_map(nullable_values=True))
    @policy.authorize("compute:aggregate:manage")
    def set_metadata(self, aggregate: str | int, metadata: Mapping[str, str | None]) -> Aggregate:
        """Merge ``metadata`` into the aggregate's; a key given ``None`` is removed."""
        if not isinstance(metadata, Mapping):
            raise exception.Invalid("metadata", "must be a mapping", metadata)
        removals = [k for k, v in metadata.items() if v is None]
        updates = validate.string_map(
            "metadata", {k: v for k, v in metadata.items() if v is not None})
        with self.db.transaction() as session:
            row = self._aggregate_row(session, aggregate)
            merged = {**row.metadata_, **updates}
            for key in removals:
                merged.pop(key, None)
            row.metadata_ = merged
            session.flush()
            return self._aggregate_view(session, row)

    @schemas.accepts(aggregate=cs.AGGREGATE)
    @policy.authorize("compute:aggregate:manage")
    def delete_aggregate(self, aggregate: str | int) -> None:
        """Delete an aggregate; it must hold no hosts (Nova's rule). Idempotent by name."""
        with self.db.transaction() as session:
            try:
                row = self._aggregate_row(session, aggregate)
            except exception.NotFound:
                return
            hosts = self._aggregate_view(session, row).hosts
            if hosts:
                raise exception.Conflict(f"aggregate {row.name!r} still holds host(s) "
                                         f"{', '.join(hosts)}")
            session.delete(row)

    # --- server groups ---------------------------------------------------------------------

    def _group_view(self, session: sa.orm.Session, row: models.ServerGroup) -> ServerGroup:
        members = session.execute(
            sa.select(models.ServerGroupMember.instance_uuid)
            .where(models.ServerGroupMember.group_id == row.id)
            .order_by(models.ServerGroupMember.instance_uuid)
        ).scalars().all()
        return ServerGroup(row.id, row.name, row.policy, dict(row.rules), tuple(members),
                           row.project_id)

    @schemas.accepts(name=s.NAME, policy=s.enum(*POLICIES),
                     max_server_per_host=s.optional(s.integer(1, 1000)))
    @policy.authorize("compute:server_group:create")
    def create_server_group(self, name: str, policy: str,
                            max_server_per_host: int | None = None) -> ServerGroup:
        """A server group with ``policy`` (affinity, anti-affinity, soft-affinity,
        soft-anti-affinity); ``max_server_per_host`` only for anti-affinity."""
        validate.name("name", name)
        validate.choice("policy", policy, POLICIES)
        rules: dict[str, int] = {}
        if max_server_per_host is not None:
            if policy != "anti-affinity":
                raise exception.Invalid("max_server_per_host",
                                        "is a rule of the anti-affinity policy only",
                                        max_server_per_host)
            rules["max_server_per_host"] = validate.integer(
                "max_server_per_host", max_server_per_host, 1, 1000)
        with self.db.transaction() as session:
            self.quotas.check(session, self.project_id, {"server_groups": 1})
            row = models.ServerGroup(id=str(uuid.uuid4()), name=name, policy=policy, rules=rules,
                                     project_id=self.project_id, user_id=self.user_id)
            session.add(row)
            session.flush()
            return self._group_view(session, row)

    @schemas.accepts(group_id=s.UUID)
    @policy.authorize("compute:server_group:get")
    def get_server_group(self, group_id: str) -> ServerGroup:
        validate.uuid_like("group_id", group_id)
        with self.db.transaction() as session:
            row = session.get(models.ServerGroup, group_id)
            if row is None or not (self._sees_all() or row.project_id == self.project_id):
                raise exception.NotFound("server group", group_id)
            return self._group_view(session, row)

    @schemas.accepts(group_id=s.UUID)
    @policy.authorize("compute:server_group:delete")
    def delete_server_group(self, group_id: str) -> None:
        """Delete a group (its servers stay); idempotent."""
        validate.uuid_like("group_id", group_id)
        with self.db.transaction() as session:
            row = session.get(models.ServerGroup, group_id)
            if row is None or not (self._sees_all() or row.project_id == self.project_id):
                return
            session.execute(sa.delete(models.ServerGroupMember)
                            .where(models.ServerGroupMember.group_id == group_id))
            session.execute(sa.delete(models.ServerGroup).where(models.ServerGroup.id == group_id))


def add_member(session: sa.orm.Session, group_id: str, instance_uuid: str) -> None:
    """Record ``instance_uuid`` as a member of ``group_id`` (inside the caller's transaction
    that creates the server); NotFound if the group does not exist."""
    if session.get(models.ServerGroup, group_id) is None:
        raise exception.NotFound("server group", group_id)
    session.add(models.ServerGroupMember(instance_uuid=instance_uuid, group_id=group_id))
