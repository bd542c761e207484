"""What the ML2 plugin does for DHCP, attached to it by the network API (:func:`attach`).

* After a network, subnet or port changed, the DHCP agents are told (``network_changed``, a
  cast: :class:`~stackcore.network.dhcp.rpc.DhcpAgentNotifier`) - whatever made the change
  (the API, the compute seam, the DHCP RPC itself).
* DHCP ports are the server's to remove when what they serve goes, as in Neutron: deleting a
  network first deletes its ``network:dhcp`` ports (a network with other ports is still a
  Conflict); deleting a subnet first takes the DHCP ports' addresses on it away.

Wrapping the plugin object's methods keeps this in one place instead of after each of the
API's calls (the compute seam calls the plugin directly too).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stackcore import exception
from stackcore.network.dhcp.driver import DEVICE_OWNER_DHCP
from stackcore.network.dhcp.rpc import DhcpAgentNotifier

if TYPE_CHECKING:
    from stackcore.db import api as db_api
    from stackcore.network.ml2.plugin import ML2Plugin
    from stackcore.rpc import Transport

LOG = logging.getLogger(__name__)

#: Deleting a network races with an agent re-creating its DHCP port between the port's
#: delete and the network's (the agent saw the network a moment earlier), deleting a subnet
#: with an agent giving its port an address there again: each attempt removes what it finds,
#: so this is bounded by the number of agents that can race.
_DELETE_ATTEMPTS = 3


def attach(plugin: ML2Plugin, db: db_api.Database, transport: Transport | None) -> ML2Plugin:
    """Add the DHCP behaviour (module doc) to ``plugin``; returns it. Without a
    ``transport`` (a plugin used as a library only) no agent is notified."""
    notifier = DhcpAgentNotifier(db, transport) if transport is not None else None

    def after(method: Callable[..., Any], network_of: Callable[..., str | None],
              ports: bool = False) -> Callable[..., Any]:
        """``method`` then a notification of its network (``ports``: naming the port, its
        first argument or the id of the port it returned)."""
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            network_id = network_of(*args, **kwargs)
            result = method(*args, **kwargs)
            if network_id is None and isinstance(result, dict):
                network_id = result.get("network_id")
            if network_id and notifier is not None:
                port_id = (result["id"] if isinstance(result, dict) else args[0]) if ports \
                    else None
                notifier.network_changed(network_id, None if port_id is None else [port_id])
            return result
        return wrapper

    def port_network(port_id: str, *_: Any, **__: Any) -> str | None:
        import sqlalchemy as sa

        from stackcore.network import models as m
        with db.transaction() as session:   # the one column, not the whole port
            found = session.execute(sa.select(m.Port.network_id)
                                    .where(m.Port.id == port_id)).scalar()
        return None if found is None else str(found)

    def subnet_network(subnet_id: str, *_: Any, **__: Any) -> str | None:
        try:
            return str(plugin.get_subnet(subnet_id)["network_id"])
        except exception.NotFound:
            return None

    def dhcp_ports(network_id: str) -> list[dict[str, Any]]:
        return [p for p in plugin.list_ports({"network_id": network_id})
                if p["device_owner"] == DEVICE_OWNER_DHCP]

    delete_network, delete_subnet, delete_port, update_port = (
        plugin.delete_network, plugin.delete_subnet, plugin.delete_port, plugin.update_port)

    def delete_network_with_dhcp_ports(network_id: str) -> None:
        def others() -> bool:
            return any(p["device_owner"] != DEVICE_OWNER_DHCP
                       for p in plugin.list_ports({"network_id": network_id}))

        for attempt in range(1, _DELETE_ATTEMPTS + 1):
            if others():
                delete_network(network_id)   # the Conflict, with the DHCP ports kept
            for port in dhcp_ports(network_id):
                delete_port(port["id"])
            try:
                delete_network(network_id)
                return
            except exception.Conflict:
                if others() or attempt == _DELETE_ATTEMPTS:
                    if notifier is not None:   # its DHCP ports are to be made again
                        notifier.network_changed(network_id)
                    raise
                LOG.info("network %s: a DHCP port was re-created while deleting it; "
                         "deleting again", network_id)

    def delete_subnet_with_dhcp_addresses(subnet_id: str) -> None:
        network_id = subnet_network(subnet_id)
        for attempt in range(1, _DELETE_ATTEMPTS + 1):
            if network_id is not None:
                # unnotified: an agent told now would give its port an address here again
                for port in dhcp_ports(network_id):
                    kept = [{"subnet_id": ip["subnet_id"], "ip_address": ip["ip_address"]}
                            for ip in port["fixed_ips"] if ip["subnet_id"] != subnet_id]
                    if len(kept) != len(port["fixed_ips"]):
                        update_port(port["id"], {"fixed_ips": kept})
            try:
                delete_subnet(subnet_id)
                return
            except exception.Conflict:
                users = [p for p in plugin.list_ports({"network_id": network_id})
                         if any(ip["subnet_id"] == subnet_id for ip in p["fixed_ips"])
                         and p["device_owner"] != DEVICE_OWNER_DHCP] if network_id else []
                if users or attempt == _DELETE_ATTEMPTS:
                    raise
                LOG.info("subnet %s: a DHCP port took an address in it again while deleting "
                         "it; deleting again", subnet_id)

    plugin.create_port = after(plugin.create_port,  # type: ignore[method-assign]
                               lambda network_id, *a, **k: network_id, ports=True)
    plugin.update_port = after(plugin.update_port,  # type: ignore[method-assign]
                               port_network, ports=True)
    plugin.delete_port = after(delete_port, port_network,  # type: ignore[method-assign]
                               ports=True)
    plugin.create_subnet = after(plugin.create_subnet,  # type: ignore[method-assign]
                                 lambda network_id, *a, **k: network_id)
    plugin.update_subnet = after(plugin.update_subnet,  # type: ignore[method-assign]
                                 subnet_network)
    plugin.delete_subnet = after(  # type: ignore[method-assign]
        delete_subnet_with_dhcp_addresses, subnet_network)
    plugin.delete_network = after(  # type: ignore[method-assign]
        delete_network_with_dhcp_ports, lambda network_id, *a, **k: network_id)
    return plugin
