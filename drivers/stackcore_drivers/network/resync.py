"""The loop the network service agents (DHCP, L3) share: level-triggered passes over the
resources they serve, with notifications in between.

An agent keeps ``_dirty`` (resource id -> the sub-items that changed, None: all of it), filled
by its notification endpoint through :meth:`ResyncLoop.mark` and ``_failed`` (resources whose
last pass failed). :meth:`ResyncLoop.run_loops` starts two daemon threads: one calling
``report_state`` every ``[agent] report_interval`` seconds, one running the passes - a full
``sync_once`` every :meth:`resync_interval` seconds (and soon after a full pass failed, e.g.
the server did not answer), ``sync_changed`` for what was notified in between, the failed
resources again every :data:`RETRY_INTERVAL` seconds. Passes never overlap (one thread).
:meth:`stop_loops` ends both within the caller's timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore_drivers.network.dhcp import interface

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport

LOG = logging.getLogger(__name__)

#: Seconds before a resource whose pass failed is passed again (e.g. the L2 datapath was not
#: set up yet: the L2 agent makes br-int when it starts), and before a full pass the server
#: did not answer is tried again.
RETRY_INTERVAL = 1.0


class ResyncLoop:
    """The shared state and threads (module doc); subclasses provide ``sync_once``,
    ``sync_changed``, ``report_state`` and :meth:`resync_interval`."""

    BINARY: ClassVar[str] = ""
    conf: cfg.ConfigOpts
    host: str

    def init_loop(self) -> None:
        #: notified resources -> the sub-items that changed (None: more than those changed)
        self._dirty: dict[str, set[str] | None] = {}
        #: resources whose last pass failed: passed again RETRY_INTERVAL seconds later
        self._failed: set[str] = set()
        self._lock = threading.Lock()
        self._pass_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._synced = False

    # --- provided by the agent ------------------------------------------------------------

    def resync_interval(self) -> float:
        raise NotImplementedError

    def sync_once(self) -> None:
        raise NotImplementedError

    def sync_changed(self) -> None:
        raise NotImplementedError

    def report_state(self) -> Any:
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------

    def mark(self, resource_id: str, items: list[str] | None = None) -> None:
        """``resource_id`` changed (only ``items`` of it, when given): pass it soon."""
        with self._lock:
            known = self._dirty.get(resource_id, set())
            self._dirty[resource_id] = (None if known is None or items is None
                                        else known | set(items))
        self._wake.set()

    def failed(self, resource_id: str) -> None:
        with self._lock:
            self._failed.add(resource_id)

    def run_loops(self) -> None:
        self._threads = [
            threading.Thread(target=self._report_loop, daemon=True,
                             name=f"{self.BINARY}-{self.host} report"),
            threading.Thread(target=self._sync_loop, daemon=True,
                             name=f"{self.BINARY}-{self.host} sync"),
        ]
        for thread in self._threads:
            thread.start()

    def _report_loop(self) -> None:
        interval = self.conf.agent.report_interval
        while not self._stop.wait(interval):
            self.report_state()

    def _sync_loop(self) -> None:
        interval = self.resync_interval()
        # the first pass failed (no server yet): the next one soon, not a resync interval later
        due = time.monotonic() + (interval if self._synced else RETRY_INTERVAL)
        while not self._stop.is_set():
            with self._lock:
                retry = bool(self._failed)
            wait = max(0.0, due - time.monotonic())
            if not self._wake.wait(min(wait, RETRY_INTERVAL) if retry else wait) and retry:
                with self._lock:   # a failed resource's turn again, whole
                    self._dirty.update(dict.fromkeys(self._failed))
                    self._failed.clear()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if time.monotonic() >= due:
                    due = time.monotonic() + interval
                    self.sync_once()
                else:
                    self.sync_changed()
            except Exception:
                # the server did not answer the list of resources: the whole pass again soon
                LOG.exception("%s on %s: pass failed (retried in %g s)", self.BINARY,
                              self.host, RETRY_INTERVAL)
                due = time.monotonic() + RETRY_INTERVAL

    def stop_loops(self, timeout: float) -> None:
        """Signal both threads and wait for them up to ``timeout`` seconds (a pass still
        running then is abandoned: passes are idempotent)."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []


class NamespaceAgent(ResyncLoop):
    """What the agents that plug ports into namespaces of their own (DHCP, L3) share besides
    the loop: the port plugger of their ``[<CONF_GROUP>] interface_driver`` (made on first
    use: an OVS connection is opened only when needed), their liveness report, and closing
    both. Subclasses set :attr:`CONF_GROUP`, :attr:`AGENT_TYPE` and :attr:`AGENT_TOPIC`, call
    :meth:`init_agent` in ``__init__`` and provide :meth:`configurations`."""

    CONF_GROUP: ClassVar[str] = ""
    AGENT_TYPE: ClassVar[str] = ""
    AGENT_TOPIC: ClassVar[str] = ""

    def init_agent(self, transport: Transport) -> None:
        from stackcore.network.agents import AgentStateRPCAPI

        self._ovsdb: Any = None
        self._plugger: interface.Plugger | None = None
        self._state = AgentStateRPCAPI(transport)
        self._start_flag = True
        self.init_loop()

    def configurations(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def plugger(self) -> interface.Plugger:
        if self._plugger is None:
            group = getattr(self.conf, self.CONF_GROUP)
            if group.interface_driver == "openvswitch":
                from stackcore_drivers.network.ovs.ovsdb import Ovsdb

                self._ovsdb = Ovsdb(self.conf.ovs.ovsdb_connection, self.conf.ovs.ovsdb_timeout)
            self._plugger = interface.Plugger(
                group.interface_driver, group.datapath_namespace or None,
                self.conf.ovs.integration_bridge, self._ovsdb)
        return self._plugger

    def close_plugger(self) -> None:
        if self._ovsdb is not None:
            self._ovsdb.close()
            self._ovsdb = None
            self._plugger = None

    def report_state(self) -> dict[str, Any] | None:
        state = {"agent_type": self.AGENT_TYPE, "binary": self.BINARY, "host": self.host,
                 "topic": self.AGENT_TOPIC, "configurations": self.configurations()}
        try:
            agent: dict[str, Any] = self._state.report_state(state,
                                                             start_flag=self._start_flag)
        except Exception as err:  # noqa: BLE001 - the server may be down; try again later
            LOG.warning("%s on %s: state report failed: %s", self.BINARY, self.host, err)
            return None
        self._start_flag = False
        return agent
