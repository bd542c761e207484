"""L2 agents: the ``agents`` table, the ``report_state`` RPC endpoint and the liveness query.

An L2 agent (Open vSwitch, Linux bridge ...) runs on each host and calls ``report_state``
every ``report_interval`` seconds over the ``network.reports`` topic with its type, host and
``configurations`` (bridge/interface mappings, tunnel types, tunnelling IP ...). Mechanism
drivers ask :meth:`PortContext.host_agents` whether a live agent with the right
configuration runs on a port's host. An agent is *alive* when its last report is at most
``[network] agent_down_time`` seconds old. When an agent starts or comes back alive, the ports
of its host whose binding failed are bound again (Neutron does that for OVS only).
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from stackcore import exception, notifications, validate
from stackcore.rpc import Target, Transport

if TYPE_CHECKING:
    from oslo_config import cfg
    from sqlalchemy.orm import Session

    from stackcore.db import api as db_api
    from stackcore.network.models import Agent

LOG = logging.getLogger(__name__)

TOPIC = "network.reports"


def agent_dict(row: Agent, down_time: int, now: datetime.datetime | None = None) -> dict[str, Any]:
    from stackcore import service
    from stackcore.db.models import utcnow
    now = now or utcnow()
    return {
        "id": row.id,
        "agent_type": row.agent_type,
        "binary": row.binary,
        "host": row.host,
        "topic": row.topic,
        "admin_state_up": row.admin_state_up,
        "configurations": dict(row.configurations or {}),
        "started_at": row.started_at.isoformat(),
        "heartbeat_at": row.heartbeat_at.isoformat(),
        "alive": service.is_up(row.heartbeat_at, down_time, now),
    }


def host_agents(session: Session, host: str, agent_type: str, down_time: int) -> list[dict[str,
                                                                                           Any]]:
    """Every agent of ``agent_type`` on ``host`` with its ``alive`` flag."""
    import sqlalchemy as sa

    from stackcore.db.models import utcnow
    from stackcore.network.models import Agent
    rows = session.execute(
        sa.select(Agent).where(Agent.host == host, Agent.agent_type == agent_type)
    ).scalars().all()
    now = utcnow()
    return [agent_dict(row, down_time, now) for row in rows]


def record_report(
    session: Session, state: Mapping[str, Any], down_time: int, start_flag: bool
) -> tuple[dict[str, Any], bool]:
    """Insert or refresh an agent row from one report. Returns the agent and whether it just
    came up (first report, restart, or first report after being dead)."""
    import sqlalchemy as sa

    from stackcore import service
    from stackcore.db.models import utcnow
    from stackcore.network.models import Agent
    agent_type = validate.name("agent_state.agent_type", state.get("agent_type"))
    host = validate.name("agent_state.host", state.get("host"))
    binary = validate.name("agent_state.binary", state.get("binary", agent_type))
    configurations = state.get("configurations") or {}
    if not isinstance(configurations, Mapping):
        raise exception.Invalid("agent_state.configurations", "must be a mapping",
                                configurations)
    now = utcnow()
    row = session.execute(
        sa.select(Agent).where(Agent.agent_type == agent_type, Agent.host == host)
        .with_for_update()
    ).scalar_one_or_none()
    came_up = True
    if row is None:
        row = Agent(id=str(uuid.uuid4()), agent_type=agent_type, binary=binary, host=host,
                    topic=str(state.get("topic", "")), configurations=dict(configurations),
                    started_at=now, heartbeat_at=now, created_at=now)
        session.add(row)
    else:
        came_up = start_flag or not service.is_up(row.heartbeat_at, down_time, now)
        row.binary = binary
        row.topic = str(state.get("topic", row.topic))
        row.configurations = dict(configurations)
        row.heartbeat_at = now
        if start_flag:
            row.started_at = now
    session.flush()
    return agent_dict(row, down_time, now), came_up


class AgentStateEndpoint:
    """RPC endpoint the agents report to (topic ``network.reports``, API 1.0).

    Runs as the ``network`` service of a Cloud. ``on_agent_up(host)`` is called after the
    report committed when an agent (re)appears: the plugin rebinds that host's failed ports.
    Its periodic work publishes the ``agent.stats`` (liveness) and ``segment.stats``
    (``type_usage()``: segmentation IDs per type and physical network) samples.
    """

    target = Target(TOPIC, version="1.0")
    #: where the samples go (the Cloud sets it)
    notifier: notifications.Notifier = notifications.NULL

    def __init__(
        self, conf: cfg.ConfigOpts, db: db_api.Database, on_agent_up: Callable[[str], Any],
        type_usage: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.conf = conf
        self.db = db
        self.on_agent_up = on_agent_up
        self.type_usage = type_usage

    def init_host(self) -> None:
        """Nothing to reconcile: reports are idempotent upserts."""

    def periodic_tasks(self) -> None:
        """The samples (liveness itself is computed from heartbeats when asked). Built only
        when notifications are on; a sample that cannot be built is logged, never raised."""
        self.notifier.sample("agent.stats", self._agents_sample)
        if self.type_usage is not None:
            self.notifier.sample("segment.stats", self._segments_sample)

    def _agents_sample(self) -> dict[str, Any]:
        import sqlalchemy as sa

        from stackcore import service
        from stackcore.db.models import utcnow
        from stackcore.network.models import Agent
        down_time = self.conf.network.agent_down_time
        now = utcnow()
        with self.db.read() as session:
            rows = session.execute(sa.select(Agent).order_by(Agent.host, Agent.agent_type)
                                   ).scalars().all()
            agents = [{"id": row.id, "agent_type": row.agent_type, "binary": row.binary,
                       "host": row.host, "admin_state_up": row.admin_state_up,
                       "alive": service.is_up(row.heartbeat_at, down_time, now),
                       "heartbeat_age_s": round((now - row.heartbeat_at).total_seconds(), 3)}
                      for row in rows]
        return {"host": self.conf.host, "agent_down_time": down_time, "agents": agents}

    def _segments_sample(self) -> dict[str, Any]:
        assert self.type_usage is not None
        try:
            types = self.type_usage()
        except exception.StackcoreError as err:  # a type driver's bad report: sampled as not
            # reporting, as compute.stats and volume.stats are
            LOG.error("segment usage could not be read: %s", err)
            return {"host": self.conf.host, "reporting": False, "report_error": str(err)}
        return {"host": self.conf.host, "reporting": True, "report_error": None,
                "types": types}

    def report_state(self, agent_state: dict[str, Any], start_flag: bool = False) -> dict[str,
                                                                                          Any]:
        """Record one report; returns the agent as stored (with ``alive``)."""
        with self.db.transaction(urgent=True) as session:  # a liveness report
            agent, came_up = record_report(
                session, agent_state, self.conf.network.agent_down_time, start_flag
            )
        if came_up:
            try:
                self.on_agent_up(agent["host"])
            except Exception:
                LOG.exception("rebinding ports of host %s after its agent came up failed",
                              agent["host"])
        return agent


class AgentStateRPCAPI:
    """Client side used by the L2 agents: ``report_state`` over ``network.reports``."""

    VERSION = "1.0"

    def __init__(self, transport: Transport) -> None:
        self._client = transport.client(Target(TOPIC, version=self.VERSION))

    def report_state(self, agent_state: dict[str, Any], start_flag: bool = False) -> dict[str,
                                                                                          Any]:
        result: dict[str, Any] = self._client.call(
            "report_state", agent_state=agent_state, start_flag=start_flag
        )
        return result
