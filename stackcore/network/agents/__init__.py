"""The agents' side of the network family: what L2 agents (and their drivers) talk to.

* :mod:`~stackcore.network.agents.state` - the ``agents`` table, ``report_state`` and liveness
  (client: :class:`AgentStateRPCAPI`);
* :mod:`~stackcore.network.agents.rpc` - the agent RPC: which ports to wire, tunnel peers,
  security group rules, device up/down (client: :class:`AgentRPCAPI`), and the server's
  notifications to the agents (served by :class:`AgentNotifyEndpoint`).

The two clients are public: an agent plugin uses them and nothing else of the server. An
agent's console script runs it with :func:`run_until_signalled` (and calls
:func:`block_stop_signals` first), which makes it stop within 5 s of SIGTERM like every
service (:mod:`stackcore.lifecycle`); a daemon an agent starts is started with
:func:`unblock_stop_signals` as its ``preexec_fn``, or it would inherit the blocked signals
and ignore the SIGTERM meant to stop it.
"""

from stackcore.lifecycle import block_stop_signals, run_until_signalled, unblock_stop_signals
from stackcore.network.agents.rpc import AgentNotifyEndpoint, AgentRPCAPI
from stackcore.network.agents.state import AgentStateRPCAPI

__all__ = ["AgentNotifyEndpoint", "AgentRPCAPI", "AgentStateRPCAPI", "block_stop_signals",
           "run_until_signalled", "unblock_stop_signals"]
