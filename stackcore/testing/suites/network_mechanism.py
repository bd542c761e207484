"""ML2 mechanism driver conformance suite.

Run it from a driver package's test module (``from stackcore.testing.suites.network_mechanism
import *``) with ``--stackcore-driver network.mechanism:<name>``. The driver runs inside a
real ML2 plugin (flat, vlan and vxlan type drivers; SQLite unless ``[database] connection``
is set) with its hooks recorded, optionally followed by the core ``fake`` driver used to inject
failures after it.

Checks: every hook is called, in order, with the context of the right resource; a later
driver's precommit failure rolls the change back and the driver never sees a postcommit for it;
a failed create postcommit is followed by the delete hooks (so the driver can undo its work);
``bind_port`` (capability ``bind_port``) is side-effect free (no database change) and
repeatable (same result twice), and either binds or says why not.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from stackcore import conf as sc_conf
from stackcore.db import api as db_api
from stackcore.db.models import Base
from stackcore.network import exceptions
from stackcore.network.api import NetworkAPI
from stackcore.network.contracts import mechanism_driver as mech_api
from stackcore.network.contracts import type_driver as type_api
from stackcore.network.mechanisms import fake as mech_fake
from stackcore.network.ml2 import contexts
from stackcore.plugins import loader
from stackcore.testing import check
from stackcore.testing.harness import DriverUnderTest
from stackcore.testing.suites.network_type import reset_network_tables

__all__ = ["TestMechanismBinding", "TestMechanismHooks", "mechanism_cloud"]

FAMILY = pytest.mark.family("network.mechanism")
HOST = "conformance-host"


@dataclasses.dataclass
class MechanismCloud:
    api: NetworkAPI
    driver: mech_api.MechanismDriver
    calls: list[tuple[str, dict[str, Any], str | None]]
    db: db_api.Database

    def hooks(self) -> list[str]:
        return [hook for hook, _, _ in self.calls]


def _record(driver: mech_api.MechanismDriver,
            calls: list[tuple[str, dict[str, Any], str | None]]) -> None:
    for hook in mech_api.HOOKS:
        original = getattr(driver, hook)

        def wrapper(context: Any, _hook: str = hook, _original: Any = original) -> None:
            network = getattr(context, "network", None)
            calls.append((_hook, copy.deepcopy(dict(context.current)),
                          network.current["id"] if network is not None else None))
            _original(context)

        setattr(driver, hook, wrapper)


@pytest.fixture
def mechanism_cloud(
    stackcore_target: DriverUnderTest, tmp_path: Path
) -> Iterator[Callable[..., MechanismCloud]]:
    conf = stackcore_target.conf
    sc_conf.register(conf, mech_fake.list_opts())
    # The suite's networks need a VLAN physnet; a driver's config may name its own.
    defaults = {}
    if not conf.ml2_type_vlan.network_vlan_ranges:
        defaults[("ml2_type_vlan", "network_vlan_ranges")] = ["physnet1:100:199"]
    for (group, option), value in defaults.items():
        conf.set_override(option, value, group=group)
    databases: list[db_api.Database] = []

    def make(fail_after: list[str] | None = None) -> MechanismCloud:
        url = conf.database.connection or f"sqlite:///{tmp_path}/mech{len(databases)}.sqlite"
        db = db_api.Database(url)
        db.upgrade()
        reset_network_tables(db)
        databases.append(db)
        types = loader.load_ordered(type_api.NAMESPACE, ["flat", "vlan", "vxlan"],
                                    type_api.CONTRACT)
        mechanisms = [stackcore_target.plugin]
        if fail_after is not None:
            conf.set_override("fail_on", fail_after, group="mech_fake")
            mechanisms.append(loader.load_one(mech_api.NAMESPACE, "fake", mech_api.CONTRACT))
        api = NetworkAPI(conf, db, None, (types, mechanisms))
        driver = api.plugin.mechanism_manager.drivers[0][1]
        calls: list[tuple[str, dict[str, Any], str | None]] = []
        _record(driver, calls)
        return MechanismCloud(api, driver, calls, db)

    yield make
    conf.clear_override("fail_on", group="mech_fake")
    for (group, option) in defaults:
        conf.clear_override(option, group=group)
    for db in databases:
        db.dispose()


@FAMILY
@pytest.mark.feature("lifecycle")
class TestMechanismHooks:
    def test_hooks_run_in_order_with_the_right_context(
        self, mechanism_cloud: Callable[..., MechanismCloud]
    ) -> None:
        cloud = mechanism_cloud()
        api = cloud.api
        net = check.step("create_network()", lambda: api.create_network("conformance"))
        sub = check.step("create_subnet()", lambda: api.create_subnet(net.id, "10.9.0.0/24"))
        port = check.step("create_port()", lambda: api.create_port(net.id))
        check.step("update_network()", lambda: api.update_network(net.id, name="renamed"))
        check.step("update_subnet()", lambda: api.update_subnet(sub.id, name="renamed"))
        check.step("update_port()", lambda: api.update_port(port.id, name="renamed"))
        check.step("delete_port()", lambda: api.delete_port(port.id))
        check.step("delete_subnet()", lambda: api.delete_subnet(sub.id))
        check.step("delete_network()", lambda: api.delete_network(net.id))
        expected = []
        for action, resource, ident in (
            ("create", "network", net.id), ("create", "subnet", sub.id),
            ("create", "port", port.id), ("update", "network", net.id),
            ("update", "subnet", sub.id), ("update", "port", port.id),
            ("delete", "port", port.id), ("delete", "subnet", sub.id),
            ("delete", "network", net.id),
        ):
            for phase in ("precommit", "postcommit"):
                expected.append((f"{action}_{resource}_{phase}", ident))
        check.equal([(h, cur["id"]) for h, cur, _ in cloud.calls], expected,
                    "hooks called (hook, resource id), in order")
        for hook, current, network_id in cloud.calls:
            if "_port_" in hook or "_subnet_" in hook:
                check.equal((network_id, current.get("network_id")), (net.id, net.id),
                            f"{hook}: (context.network id, current network_id)")
            if hook.startswith("update_") and "_port_" in hook:
                check.equal(current.get("name"), "renamed", f"{hook}: context.current name")

    def test_precommit_failure_after_the_driver_rolls_back(
        self, mechanism_cloud: Callable[..., MechanismCloud]
    ) -> None:
        cloud = mechanism_cloud(fail_after=["create_port_precommit"])
        net = cloud.api.create_network("conformance")
        check.raises(exceptions.MechanismDriverError, lambda: cloud.api.create_port(net.id),
                     "create_port() with a later driver failing create_port_precommit")
        check.equal(cloud.api.list_ports(), [], "ports after the rolled-back create")
        check.that("create_port_precommit" in cloud.hooks(), "hooks the driver saw",
                   "create_port_precommit (it runs before the failing driver)", cloud.hooks())
        check.that("create_port_postcommit" not in cloud.hooks(), "hooks the driver saw",
                   "no create_port_postcommit for a rolled-back create", cloud.hooks())
        # The driver must hold nothing of the rolled-back port (no state kept from a
        # precommit): the same port can be made, and the network deleted, afterwards.
        cloud.api.conf.clear_override("fail_on", group="mech_fake")
        port = check.step("create_port() again after the rolled-back one",
                          lambda: cloud.api.create_port(net.id))
        check.step("delete_port()", lambda: cloud.api.delete_port(port.id))
        check.step("delete_network() after a rolled-back create_port",
                   lambda: cloud.api.delete_network(net.id))

    def test_failed_create_postcommit_is_followed_by_delete_hooks(
        self, mechanism_cloud: Callable[..., MechanismCloud]
    ) -> None:
        cloud = mechanism_cloud(fail_after=["create_network_postcommit"])
        check.raises(exceptions.MechanismDriverError,
                     lambda: cloud.api.create_network("conformance"),
                     "create_network() with a later driver failing create_network_postcommit")
        check.equal(cloud.api.list_networks(), [], "networks after the failed create")
        check.equal(cloud.hooks(), ["create_network_precommit", "create_network_postcommit",
                                    "delete_network_precommit", "delete_network_postcommit"],
                    "hooks the driver saw for a create whose postcommit failed later")
        # Its delete hooks must have undone what its create postcommit made: the same network
        # can be made again (a driver still holding the first one refuses it).
        cloud.api.conf.clear_override("fail_on", group="mech_fake")
        net = check.step("create_network() again after the failed create",
                         lambda: cloud.api.create_network("conformance"))
        check.step("delete_network()", lambda: cloud.api.delete_network(net.id))


def _snapshot(db: db_api.Database) -> dict[str, list[tuple[Any, ...]]]:
    with db.transaction() as session:
        return {
            table.name: sorted(tuple(map(repr, row))
                               for row in session.execute(sa.select(table)).all())
            for table in Base.metadata.sorted_tables
        }


def _attempt(driver: mech_api.MechanismDriver, context: contexts.PortContext
             ) -> contexts.BindingAttempt:
    attempt = contexts.BindingAttempt("under-test", 0,
                                      [dict(s) for s in context.network.network_segments])
    context.begin_attempt(attempt)
    try:
        driver.bind_port(context)
    finally:
        context.end_attempt()
    return attempt


@FAMILY
@pytest.mark.capability("bind_port")
class TestMechanismBinding:
    @pytest.mark.parametrize("provider", [
        {}, {"network_type": "vlan", "physical_network": "physnet1"},
        {"network_type": "flat", "physical_network": "physnet1"},
    ], ids=["project", "vlan", "flat"])
    def test_bind_port_is_side_effect_free_repeatable_and_explained(
        self, mechanism_cloud: Callable[..., MechanismCloud], provider: dict[str, Any]
    ) -> None:
        cloud = mechanism_cloud()
        net = cloud.api.create_network("conformance", **provider)
        port = cloud.api.create_port(net.id)
        plugin = cloud.api.plugin
        before = _snapshot(cloud.db)
        results = []
        for _ in range(2):
            context = plugin.binding_context(port.id, host=HOST)
            results.append(_attempt(cloud.driver, context))
        after = _snapshot(cloud.db)
        changed = sorted(t for t in before if before[t] != after.get(t))
        check.empty(changed, "database tables bind_port() changed (it must be side-effect "
                    "free)")
        first, second = results
        check.equal((second.bound_segment, second.vif_type, second.vif_details,
                     second.next_segments),
                    (first.bound_segment, first.vif_type, first.vif_details,
                     first.next_segments),
                    "a second bind_port() of the same port (bound segment, vif_type, "
                    "vif_details, next segments)")
        check.that(first.bound_segment is not None or bool(first.refusals),
                   "bind_port() outcome", "a binding or a reason (PortContext.refuse)",
                   "neither")
