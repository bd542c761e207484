"""The core ML2 plugin: networks, subnets and ports through the type and mechanism managers.

* :mod:`~stackcore.network.ml2.plugin` - the plugin (every operation's transaction shape);
* :mod:`~stackcore.network.ml2.managers` - the type and mechanism managers;
* :mod:`~stackcore.network.ml2.contexts` - the contexts handed to mechanism drivers;
* :mod:`~stackcore.network.ml2.ipam` - IP address management.
"""
