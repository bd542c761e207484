"""Broken ML2 mechanism drivers: each subclasses the core fake and breaks one rule."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from stackcore import exception
from stackcore.network.contracts import mechanism_driver as api
from stackcore.network.mechanisms.fake import FakeMechanismDriver
from tests.kit.registry import Broken

M = "tests.kit.network_mechanism"
H, B = "TestMechanismHooks::", "TestMechanismBinding::"


class UpdateSubnetFails(FakeMechanismDriver):
    def update_subnet_postcommit(self, context: api.SubnetContext) -> None:
        raise exception.DriverError("subnet updates are not supported by the backend")


class KeepsPrecommitState(FakeMechanismDriver):
    """Remembers ports from create_port_precommit (they may be rolled back) and refuses to
    delete a network that 'has ports'."""

    def __init__(self, conf: Any) -> None:
        super().__init__(conf)
        self.ports: dict[str, str] = {}

    def create_port_precommit(self, context: api.PortContext) -> None:
        self.ports[context.current["id"]] = context.current["network_id"]

    def delete_port_postcommit(self, context: api.PortContext) -> None:
        self.ports.pop(context.current["id"], None)

    def delete_network_precommit(self, context: api.NetworkContext) -> None:
        if context.current["id"] in self.ports.values():
            raise exception.Conflict("network still has ports on the backend")


class DeleteDoesNotUndo(FakeMechanismDriver):
    """Realises network names on its backend in create postcommit; delete forgets to remove
    them, so the name stays taken."""

    def __init__(self, conf: Any) -> None:
        super().__init__(conf)
        self.names: set[str] = set()

    def create_network_precommit(self, context: api.NetworkContext) -> None:
        if context.current["name"] in self.names:
            raise exception.Conflict(f"network name {context.current['name']!r} in use")

    def create_network_postcommit(self, context: api.NetworkContext) -> None:
        self.names.add(context.current["name"])


class BindsDifferentlyEachTime(FakeMechanismDriver):
    _turn = itertools.count()

    def bind_port(self, context: api.PortContext) -> None:
        segment = context.segments_to_bind[0]
        context.set_binding(segment["id"], "fake", {"attempt": next(self._turn)})


class SilentBinder(FakeMechanismDriver):
    def bind_port(self, context: api.PortContext) -> None:
        return None  # neither binds nor says why


class LiarBindPort(FakeMechanismDriver):
    capabilities: ClassVar[Mapping[str, bool]] = {"bind_port": False}


def _b(name: str, cls: type, kills: Sequence[str], expect: str, defect: str,
       outcome: str = "fail", capability: str = "") -> Broken:
    return Broken("network.mechanism", f"zoo-{name}", f"{M}:{cls.__name__}", tuple(kills),
                  expect, outcome, "", defect, capability)


BIND = [B + f"test_bind_port_is_side_effect_free_repeatable_and_explained[{p}]"
        for p in ("project", "vlan", "flat")]

ZOO = [
    _b("update-subnet-fails", UpdateSubnetFails,
       [H + "test_hooks_run_in_order_with_the_right_context"],
       "update_subnet() raised MechanismDriverError", "a postcommit raises"),
    _b("keeps-precommit-state", KeepsPrecommitState,
       [H + "test_precommit_failure_after_the_driver_rolls_back"],
       "delete_network() after a rolled-back create_port raised MechanismDriverError",
       "state kept from a rolled-back precommit"),
    _b("delete-does-not-undo", DeleteDoesNotUndo,
       [H + "test_failed_create_postcommit_is_followed_by_delete_hooks"],
       "create_network() again after the failed create raised MechanismDriverError",
       "the delete hooks do not undo a half-made create"),
    _b("binds-differently", BindsDifferentlyEachTime, BIND,
       "a second bind_port() of the same port (bound segment, vif_type, vif_details, next "
       "segments): expected", "bind_port is not repeatable", capability="bind_port"),
    _b("silent-binder", SilentBinder, BIND,
       "bind_port() outcome: expected a binding or a reason (PortContext.refuse), got neither",
       "bind_port neither binds nor refuses", capability="bind_port"),
    _b("liar-bind_port", LiarBindPort, BIND, "capability 'bind_port' is declared unsupported",
       "binds ports but declares bind_port unsupported", "unexpected-success", "bind_port"),
]
