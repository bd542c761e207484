"""ML2 mechanism drivers that need a per-host L2 agent, and those agents.

``openvswitch`` (:mod:`.ovs`, extra ``[ovs]``: ovsdbapp) and ``linuxbridge``
(:mod:`.linuxbridge`, extra ``[linuxbridge]``: pyroute2). The server side (mechanism driver)
only reads agent reports; the agent side owns the backend on one host.
"""
