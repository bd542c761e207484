"""The network family's contracts: what a plugin of each network kind must offer.

* :mod:`~stackcore.network.contracts.type_driver` - ML2 type drivers (segments);
* :mod:`~stackcore.network.contracts.mechanism_driver` - ML2 mechanism drivers (backends);
* :mod:`~stackcore.network.contracts.agent` - L2 agents run inside a Cloud.
"""
