"""The network family: ML2 (type and mechanism drivers), networks, subnets, ports, agents.

``cloud.network`` is :class:`stackcore.network.api.NetworkAPI`; the contracts are
:mod:`stackcore.network.contracts.type_driver` and
:mod:`stackcore.network.contracts.mechanism_driver`.
"""
