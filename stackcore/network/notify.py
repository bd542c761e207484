"""Neutron's notifications for networks, subnets and ports, attached to the ML2 plugin by the
network API (:func:`attach`): ``<resource>.<create|update|delete>.start`` before the plugin
call, ``.end`` with the resource after it returned, ``.error`` with the fault if it raised.

The plugin's methods return only once their transaction committed (and the mechanism
drivers' postcommits ran), so ``.end`` is never sent from inside a transaction: a consumer that
reads the resource on ``.end`` finds it, and a rolled-back change never has an ``.end``.
Wrapping the plugin object (as :mod:`stackcore.network.dhcp.hooks` does) covers every caller:
the API and the compute seam's ports alike. Bad input the API refuses never gets this far, so
it emits nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from stackcore.notifications import schemas

if TYPE_CHECKING:
    from stackcore.network.ml2.plugin import ML2Plugin
    from stackcore.notifications.notifier import Notifier

_FIELDS = {"network": schemas.NETWORK_FIELDS, "subnet": schemas.SUBNET_FIELDS,
           "port": schemas.PORT_FIELDS, "security_group": schemas.SECURITY_GROUP_FIELDS,
           "security_group_rule": schemas.SECURITY_GROUP_RULE_FIELDS,
           "router": schemas.ROUTER_FIELDS, "floatingip": schemas.FLOATINGIP_FIELDS}

F = TypeVar("F", bound=Callable[..., Any])


def fields(resource: str, found: Mapping[str, Any]) -> dict[str, Any]:
    """The payload fields of ``resource`` from the plugin's dict: those its schema lists
    (never a port's binding profile or vif details: what a driver put there is not for a bus
    with more readers than the API)."""
    return {name: found[name] for name in _FIELDS[resource] if name in found}


def attach(plugin: ML2Plugin, notifier: Callable[[], Notifier]) -> ML2Plugin:
    """Wrap ``plugin``'s create/update/delete of networks, subnets and ports with their
    notifications (module doc), sent through ``notifier()`` (read at each call: the Cloud sets
    the API's notifier after building it). Returns ``plugin``."""

    def wrap(resource: str, action: str,
             before: Callable[..., dict[str, Any]]) -> None:
        method = getattr(plugin, f"{action}_{resource}")

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            send = notifier()
            event = f"{resource}.{action}"
            if not send.enabled:
                return method(*args, **kwargs)
            start = before(*args, **kwargs)
            send.info(f"{event}.start", lambda: start)
            try:
                result = method(*args, **kwargs)
            except Exception as err:
                send.error(f"{event}.error", lambda: start, err, f"{action}_{resource}")
                raise
            # after the plugin returned: its transaction committed (module doc)
            end = fields(resource, result) if isinstance(result, Mapping) else start
            send.info(f"{event}.end", lambda: end)
            return result

        setattr(plugin, f"{action}_{resource}", wrapper)

    def by_id(resource: str) -> Callable[..., dict[str, Any]]:
        def before(resource_id: str, changes: Mapping[str, Any] | None = None,
                   *_: Any, **__: Any) -> dict[str, Any]:
            # the changes named by the schema, but a port's requested fixed_ips (a subnet
            # without an address yet): .end has the addresses allocated
            asked = {k: v for k, v in (changes or {}).items() if k != "fixed_ips"}
            return {"id": resource_id, **fields(resource, asked)}
        return before

    wrap("network", "create", lambda name, *_, **__: {"name": name})
    wrap("subnet", "create", lambda network_id, name, *_, **__: {"network_id": network_id,
                                                                 "name": name})
    wrap("port", "create", lambda network_id, attrs, *_, **__: {
        "network_id": network_id, **fields("port", {k: v for k, v in attrs.items()
                                                    if k in ("name", "device_id",
                                                             "device_owner")})})
    for resource in ("network", "subnet", "port"):
        wrap(resource, "update", by_id(resource))
        wrap(resource, "delete", by_id(resource))
    return plugin


def emits(resource: str, action: str) -> Callable[[F], F]:
    """A network API method (``self.notifier``) sending ``<resource>.<action>.start``,
    ``.end`` / ``.error`` around it, for what the API does itself (security groups, routers,
    floating IPs). Put
    under the schema and policy decorators: a call they refuse emits nothing. The method
    returns after its ``with db.transaction()`` block, so ``.end`` follows the commit; the
    ``.start`` payload is the first argument: the name of what is made, else its id."""

    def decorate(method: F) -> F:
        signature = inspect.signature(method)
        first_name = next(p for p in signature.parameters if p != "self")

        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            send = self.notifier
            if not send.enabled:
                return method(self, *args, **kwargs)
            # the first parameter however it was passed (by keyword, or left to its default)
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            first = bound.arguments[first_name]
            event = f"{resource}.{action}"
            key = {"security_group": "name", "security_group_rule": "security_group_id",
                   "router": "name", "floatingip": "floating_network_id"}[
                resource] if action == "create" else "id"
            start = {key: first}
            send.info(f"{event}.start", lambda: start)
            try:
                result = method(self, *args, **kwargs)
            except Exception as err:
                send.error(f"{event}.error", lambda: start, err, f"{action}_{resource}")
                raise
            end = fields(resource, dataclasses.asdict(result)) \
                if dataclasses.is_dataclass(result) and not isinstance(result, type) else start
            send.info(f"{event}.end", lambda: end)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate
