"""Volume placement through the filter scheduler: pool states from the database, the configured
volume filters and weighers, then an atomic capacity claim on the best pool.

Used as a library by ``cloud.volume`` (volume placement has no RPC hop: the claim is the only
shared state and it is a single conditional UPDATE, see :mod:`stackcore.volume.placement.claims`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from oslo_config import cfg

from stackcore import exception, service
from stackcore.db import api as db_api
from stackcore.db import models as core_models
from stackcore.volume import models as volume_models
from stackcore.volume import opts as volume_opts
from stackcore.volume.placement import capacity, claims, load_handler
from stackcore.volume.placement.pools import PoolSet, PoolState, capabilities_of, pool_rows
from stackcore.volume.placement.request import VolumeRequest

DELETED = "deleted"


class VolumeScheduler:
    """Filters, weighs and claims volume pools."""

    def __init__(self, conf: cfg.ConfigOpts, db: db_api.Database) -> None:
        self.conf = conf
        self.db = db
        self.handler = load_handler(conf)

    def _default_mosr(self, backend: str) -> float | str:
        if backend in self.conf:
            try:
                return volume_opts.mosr(self.conf, backend)
            except cfg.NoSuchOptError:
                pass
        value = self.conf.volume.max_over_subscription_ratio
        return "auto" if value == "auto" else float(value)

    def pool_states(self) -> PoolSet:
        """Every present pool with its backend's state, claims since its report and volume
        count."""
        down_time = self.conf.service_down_time
        now = core_models.utcnow()
        with self.db.transaction() as session:
            rows = pool_rows(session)
            vol = volume_models.Volume
            counts = {(h, p): int(n) for h, p, n in session.execute(
                sa.select(vol.host, vol.pool, sa.func.count())
                .where(vol.host.is_not(None), vol.status != DELETED)
                .group_by(vol.host, vol.pool)
            ).all()}
        states = []
        for pool, backend, svc in rows:
            backend_name = pool.host.partition("@")[2]
            stats = dict(pool.stats or {})
            states.append(PoolState(
                name=f"{pool.host}#{pool.pool_name}",
                backend=pool.host,
                availability_zone=svc.availability_zone,
                up=service.is_up(svc.last_seen_at, down_time, now) and not svc.disabled,
                reporting=backend.reporting,
                capacity=capacity.Pool.from_stats(stats) if stats else capacity.Pool(
                    "unknown", "unknown"),
                consumed_gb=float(pool.allocated_capacity_gb - pool.allocated_at_report),
                allocated_capacity_gb=float(pool.allocated_capacity_gb),
                volumes=counts.get((pool.host, pool.pool_name), 0),
                capabilities=capabilities_of(stats, dict(backend.stats or {})),
                default_mosr=self._default_mosr(backend_name),
            ))
        return PoolSet.from_states(states)

    def explain(self, request: dict[str, Any], limit: int | None = 20) -> dict[str, Any]:
        """The filter trace and weighed ranking of pools for ``request`` (``size``,
        ``extra_specs``, ``availability_zone``), placing nothing."""
        req = VolumeRequest.from_dict(request)
        return self.handler.run(self.pool_states(), req).to_dict(limit)

    def passes(self, pool_name: str, request: VolumeRequest) -> bool:
        """Whether the filters accept the pool ``pool_name`` (``host@backend#pool``) for
        ``request`` (a retype asks with size 0: the volume is there already)."""
        pools = self.pool_states()
        decision = self.handler.run(pools, request)
        return any(pools.state(int(i)).name == pool_name for i in decision.order)

    def place(self, volume_id: str, request: VolumeRequest,
              accept: Callable[[str], str | None] | None = None) -> str:
        """Choose a pool for ``volume_id``, claim ``request.size`` on it atomically and record
        the pool's zone on the volume; returns the backend host (``host@backend``). Raises
        NoValidHost explaining each filter's rejections. ``accept`` (a migration's) is asked
        of each pool the filters passed, in weighed order: None takes it, a string is why
        not (it joins the reasons)."""
        pools = self.pool_states()
        if not len(pools):
            raise exception.NoValidHost("no volume backend has reported",
                                        reasons=["no volume service is reporting stats"])
        decision = self.handler.run(pools, request)
        reasons = decision.reasons()
        for i in decision.order:
            pool = pools.state(int(i))
            refused = accept(pool.name) if accept is not None else None
            if refused is not None:
                reasons.append(f"{pool.name}: {refused}")
                continue
            host, _, pool_name = pool.name.partition("#")
            with self.db.transaction() as session:
                if claims.claim(session, host, pool_name, volume_id, request.size,
                                request.thin):
                    session.execute(sa.update(volume_models.Volume)
                                    .where(volume_models.Volume.id == volume_id)
                                    .values(availability_zone=pool.availability_zone))
                    return host
            reasons.append(f"{pool.name} was filled by a concurrent request")
        raise exception.NoValidHost("no valid backend was found", reasons=reasons)
