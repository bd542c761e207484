"""What every L2 agent does, whatever its backend: report its state, and reconcile its host's
backend with the ML2 database.

An agent runs on one host (``[DEFAULT] host``, the name ports are bound to). It

* reports ``report_state`` (agent type, host, ``configurations``) to the server's
  ``network.reports`` endpoint every ``[agent] report_interval`` seconds, from a thread that
  does nothing else; the first report after a start carries ``start_flag`` so the server
  rebinds the host's failed ports;
* reconciles every ``[agent] polling_interval`` seconds: it asks the server over the agent
  RPC (``network.agents``, :mod:`stackcore.network.agents.rpc`) for the ports bound to its host
  and their tunnel peers (:mod:`.host_state`) and makes the backend match - missing things
  created, stale things removed, things that are right left alone. Start-up is just the first
  pass, which is how a restarted agent resyncs;
* with ``[securitygroup] firewall_driver`` set to its backend's firewall, also asks for its
  ports' security group rules (``security_group_rules_for_devices``) and enforces them in the
  same pass (:attr:`HostState.ports` carry a :class:`PortSecurity` each); the server's
  ``security_groups_changed`` notification (topic ``network.agent-notify``) starts a pass at
  once instead of at the next interval;
* after each pass, tells the server which ports it wired (``update_device_up``: the port
  becomes ACTIVE) and which it no longer passes traffic for (``update_device_down``: DOWN),
  comparing with the status the server sent, so a pass that changed nothing sends nothing.

The agent never touches the database; everything goes through ``stackcore.rpc`` (in-process
in an embedded cloud, oslo.messaging between processes).

A report or a pass that fails is logged and retried at the next interval; the agent never
stops on a backend or server error.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import exception, lazy
from stackcore.network import L2AgentPlugin
from stackcore.network.agents import AgentRPCAPI, AgentStateRPCAPI
from stackcore_drivers.network.host_state import HostState, read_host_state

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.rpc import Transport


LOG = logging.getLogger(__name__)


AGENT_OPTS = lazy.options(lambda cfg: [
    cfg.FloatOpt("report_interval", default=30.0, min=0.1,
                 help="Seconds between two state reports (heartbeats). Keep it at most a third "
                      "of the server's [network] agent_down_time."),
    cfg.FloatOpt("polling_interval", default=2.0, min=0.1,
                 help="Seconds between two reconciliations of the host's backend with the "
                      "database."),
])

SECURITYGROUP_OPTS = lazy.options(lambda cfg: [
    cfg.StrOpt("firewall_driver", default="noop",
               help="How the agent enforces security groups: 'noop' (nothing is filtered, "
                    "Neutron's default), 'openvswitch' (OVS agent: conntrack flows on "
                    "br-int) or 'nftables' (Linux bridge agent: nftables with "
                    "bridge-netfilter conntrack)."),
])


class L2Agent(L2AgentPlugin):
    """Base of the OVS and Linux bridge agents: subclasses say what they report and how they
    reconcile. ``transport`` reaches the server (state reports and the agent RPC)."""

    VERSION: ClassVar[str] = "1.0"
    AGENT_TYPE: ClassVar[str]
    BINARY: ClassVar[str]
    VIF_TYPE: ClassVar[str]
    #: The backend's own option groups, besides ``[agent]``.
    BACKEND_OPTS: ClassVar[list[tuple[str, Sequence[cfg.Opt]]]] = []
    #: ``[securitygroup] firewall_driver`` value that turns this agent's firewall on.
    FIREWALL_DRIVER: ClassVar[str] = ""

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        """``[agent]``, ``[securitygroup]`` plus the backend's groups
        (stackcore.network.agents contract)."""
        return [("agent", AGENT_OPTS), ("securitygroup", SECURITYGROUP_OPTS),
                *cls.BACKEND_OPTS]

    def __init__(self, conf: cfg.ConfigOpts, transport: Transport) -> None:
        from stackcore import conf as sc_conf

        sc_conf.register(conf, [("agent", AGENT_OPTS), ("securitygroup", SECURITYGROUP_OPTS)])
        driver = conf.securitygroup.firewall_driver
        allowed = ["noop", *([self.FIREWALL_DRIVER] if self.FIREWALL_DRIVER else [])]
        if driver not in allowed:
            raise exception.ConfigError(f"[securitygroup] firewall_driver = {driver!r}: "
                                        f"{type(self).__name__} supports {allowed}")
        #: whether this agent enforces security groups
        self.firewall_enabled = driver != "noop"
        self.conf = conf
        self._transport = transport
        self._notify_server: Any = None
        self._wake = threading.Event()
        self.host: str = conf.host
        self._rpc = AgentStateRPCAPI(transport)
        self.plugin_rpc = AgentRPCAPI(transport)
        self._start_flag = True
        self._stop = threading.Event()
        self._pass_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        #: Problems of the last pass per port id (e.g. an unmapped physical network).
        self.port_errors: dict[str, str] = {}

    # --- what subclasses provide ----------------------------------------------------------

    @staticmethod
    def check_config(conf: cfg.ConfigOpts) -> None:
        """Raise ConfigError naming the option when the agent's settings cannot work (called
        before anything connects)."""

    @abc.abstractmethod
    def configurations(self) -> dict[str, Any]:
        """What this agent can wire, as the mechanism driver reads it (JSON types)."""

    @abc.abstractmethod
    def tunnel_types(self) -> list[str]:
        """Overlay network types this agent handles (``[]`` without a local IP)."""

    @abc.abstractmethod
    def reconcile(self, state: HostState) -> set[str]:
        """Make the backend match ``state``: idempotent, touches nothing that is right.
        Returns the ids of the ports whose traffic now passes (plugged, wired, admin up)."""

    def close(self) -> None:
        """Release backend connections (the backend state itself stays)."""

    # --- the loop -------------------------------------------------------------------------

    def report_state(self) -> dict[str, Any] | None:
        """Send one heartbeat; returns the agent row the server stored, None on failure."""
        state = {"agent_type": self.AGENT_TYPE, "binary": self.BINARY, "host": self.host,
                 "topic": "", "configurations": self.configurations()}
        try:
            agent = self._rpc.report_state(state, start_flag=self._start_flag)
        except Exception as err:  # noqa: BLE001 - the server may be down; try again later
            LOG.warning("%s on %s: state report failed: %s", self.BINARY, self.host, err)
            return None
        self._start_flag = False
        return agent

    def sync_once(self) -> HostState:
        """One reconciliation pass, then the status of the ports that changed.

        Passes never overlap: a pass reads the server's state and then writes the backend, so
        two concurrent passes (the loop's and an explicit call) could otherwise let the older
        read land last and undo the newer one."""
        with self._pass_lock:
            state = read_host_state(self.plugin_rpc, self.host, self.AGENT_TYPE,
                                    self.tunnel_types(), security=self.firewall_enabled)
            wired = self.reconcile(state)
            self.report_devices(state, wired)
            return state

    def report_devices(self, state: HostState, wired: set[str]) -> None:
        """``update_device_up`` for wired ports the server does not see ACTIVE yet,
        ``update_device_down`` for the others it sees ACTIVE. A failed call is logged and
        retried by the next pass (the server's status is compared again)."""
        for port_id, port in sorted(state.ports.items()):
            up = port_id in wired and port.admin_state_up
            try:
                if up and port.status == "DOWN":
                    self.plugin_rpc.update_device_up(port_id, self.host)
                elif not up and port.status == "ACTIVE":
                    self.plugin_rpc.update_device_down(port_id, self.host)
            except Exception as err:  # noqa: BLE001 - the next pass compares again
                LOG.warning("%s on %s: status report of port %s failed: %s", self.BINARY,
                            self.host, port_id, err)

    def start(self) -> None:
        """Reconcile and report once now (so start-up problems surface to the caller), then
        keep doing both until :meth:`stop`: heartbeats in a thread of their own (a long
        reconciliation pass never delays one, so a busy agent is not declared dead), passes
        in another. A server that does not answer yet (it is starting or restarting too) is
        no start-up problem: the loop's passes try again until it does."""
        try:
            self.sync_once()
        except exception.RPCError as err:
            LOG.warning("%s on %s: first pass failed, the server does not answer yet (tried "
                        "again every %s s): %s", self.BINARY, self.host,
                        self.conf.agent.polling_interval, err)
        self.report_state()
        self._stop.clear()
        if self.firewall_enabled and self._notify_server is None:
            from stackcore.network.agents import AgentNotifyEndpoint
            endpoint = AgentNotifyEndpoint(self.AGENT_TYPE, self.host, self.wake)
            try:
                self._notify_server = self._transport.serve(endpoint.target, endpoint)
            except exception.RPCError as err:  # e.g. an old agent object still listens
                LOG.warning("%s on %s: not listening for notifications (changes wait for "
                            "the next pass): %s", self.BINARY, self.host, err)
        self._threads = [
            self._every(self.conf.agent.report_interval, self.report_state, "report"),
            self._every(self.conf.agent.polling_interval, self._pass, "reconcile",
                        wake=self._wake),
        ]

    def wake(self) -> None:
        """Run the next pass now (the server's ``security_groups_changed`` notification)."""
        self._wake.set()

    def _pass(self) -> None:
        try:
            self.sync_once()
        except Exception:
            LOG.exception("%s on %s: reconciliation failed", self.BINARY, self.host)

    def _every(self, interval: float, work: Callable[[], object], what: str,
               wake: threading.Event | None = None) -> threading.Thread:
        def loop() -> None:
            due = time.monotonic() + interval
            while not self._stop.is_set():
                if wake is not None:
                    woken = wake.wait(max(0.0, due - time.monotonic()))
                    wake.clear()
                    if self._stop.is_set():
                        return
                    if not woken and time.monotonic() < due:
                        continue
                elif self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                due = max(due + interval, time.monotonic())
                work()

        thread = threading.Thread(target=loop, name=f"{self.BINARY}-{self.host} {what}",
                                  daemon=True)
        thread.start()
        return thread

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the loops (the wiring stays in place, as when the process dies) and close.
        A pass still running after ``timeout`` seconds is abandoned (its thread is a daemon):
        it is idempotent, and the next start's first pass finishes its work."""
        self._stop.set()
        self._wake.set()
        if self._notify_server is not None:
            try:
                self._notify_server.stop()
            except Exception as err:  # noqa: BLE001 - stopping goes on
                LOG.warning("%s on %s: stopping the notification server: %s", self.BINARY,
                            self.host, err)
            self._notify_server = None
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            LOG.warning("%s on %s: a pass still runs after %.1f s; left to the next start",
                        self.BINARY, self.host, timeout)
        self._threads = []
        self.close()
