"""The type manager and the mechanism manager: the ML2 plugin's two driver registries.

The type manager maps network types to the loaded type drivers and turns provider attributes
or ``[ml2] project_network_types`` into segments. The mechanism manager calls the mechanism
drivers' hooks in ``[ml2] mechanism_drivers`` order with the failure semantics documented in
:mod:`stackcore.network.contracts.mechanism_driver`, and binds ports level by level.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg
from sqlalchemy.orm import Session

from stackcore import exception
from stackcore.db import api as db_api
from stackcore.network import exceptions
from stackcore.network.contracts import mechanism_driver as mech_api
from stackcore.network.contracts.type_driver import Segment, TypeDriver
from stackcore.network.ml2 import contexts
from stackcore.network.stats import validate_usage
from stackcore.plugins.loader import Plugin

LOG = logging.getLogger(__name__)


class TypeManager:
    """The loaded type drivers, keyed by the type they handle."""

    def __init__(self, conf: cfg.ConfigOpts, plugins: Sequence[Plugin]) -> None:
        self.conf = conf
        self.drivers: dict[str, TypeDriver] = {}
        for plugin in plugins:
            driver: TypeDriver = plugin.cls(conf)
            network_type = driver.get_type()
            if network_type in self.drivers:
                raise exception.ConfigError(
                    f"[ml2] type_drivers: two drivers handle network type {network_type!r} "
                    f"(the second is entry point {plugin.name!r})"
                )
            self.drivers[network_type] = driver
        self.project_types = [t.strip() for t in conf.ml2.project_network_types if t.strip()]
        for network_type in self.project_types:
            if network_type not in self.drivers:
                raise exception.ConfigError(
                    f"[ml2] project_network_types: {network_type!r} has no type driver "
                    f"(loaded: {', '.join(sorted(self.drivers)) or 'none'})"
                )

    def initialize(self, session: Session) -> None:
        for driver in self.drivers.values():
            driver.initialize(session)

    def driver_for(self, network_type: Any) -> TypeDriver:
        driver = self.drivers.get(network_type) if isinstance(network_type, str) else None
        if driver is None:
            raise exception.Invalid(
                "network_type",
                f"{network_type!r} is not a loaded network type (loaded: "
                f"{', '.join(sorted(self.drivers)) or 'none'})",
                network_type,
            )
        return driver

    def validate_provider_segment(self, segment: Segment) -> Segment:
        """Outside the transaction: the driver's check of a provider segment."""
        return self.driver_for(segment.get("network_type")).validate_provider_segment(segment)

    def reserve_provider_segment(self, session: Session, segment: Segment) -> Segment:
        return self._complete(
            self.driver_for(segment["network_type"]).reserve_provider_segment(session, segment)
        )

    def allocate_tenant_segment(self, session: Session) -> Segment:
        """A segment of the first project network type with a free ID."""
        for network_type in self.project_types:
            segment = self.drivers[network_type].allocate_tenant_segment(session)
            if segment is not None:
                return self._complete(segment)
        raise exceptions.NoNetworkAvailable(self.project_types)

    def release_segment(self, session: Session, segment: Segment) -> None:
        driver = self.drivers.get(segment["network_type"])
        if driver is None:
            LOG.warning("no type driver for %s any more: segment %s not released",
                        segment["network_type"], segment.get("id"))
            return
        driver.release_segment(session, segment)

    def usage(self, session: Session) -> list[dict[str, Any]]:
        return [
            validate_usage(driver.get_usage(session), f"type driver {network_type!r}")
            for network_type, driver in sorted(self.drivers.items())
        ]

    def _complete(self, segment: Segment) -> Segment:
        segment.setdefault("physical_network", None)
        segment.setdefault("segmentation_id", None)
        if "mtu" not in segment:
            segment["mtu"] = self.drivers[segment["network_type"]].get_mtu(
                segment["physical_network"]
            )
        return segment


@dataclasses.dataclass(frozen=True)
class BindingResult:
    """The outcome of binding a port: levels bound (empty on failure), VIF, failures."""

    levels: list[dict[str, Any]]
    vif_type: str
    vif_details: dict[str, Any]
    status: str | None
    failures: list[dict[str, Any]]


def failure_text(failure: dict[str, Any]) -> str:
    """``"<driver>: segment <type>/<physnet>/<id>: <reason>"`` (segment part when known)."""
    segment = failure.get("segment")
    if segment:
        parts = [segment.get("network_type"), segment.get("physical_network"),
                 segment.get("segmentation_id")]
        where = "/".join(str(p) for p in parts if p not in (None, ""))
        return f"{failure['driver']}: segment {where}: {failure['reason']}"
    return f"{failure['driver']}: {failure['reason']}"


class MechanismManager:
    """The loaded mechanism drivers in configured order."""

    def __init__(self, conf: cfg.ConfigOpts, plugins: Sequence[Plugin]) -> None:
        self.conf = conf
        self.drivers: list[tuple[str, mech_api.MechanismDriver]] = [
            (plugin.name, plugin.cls(conf)) for plugin in plugins
        ]
        self._binders = [
            (name, driver) for name, driver in self.drivers
            if getattr(driver, "capabilities", {}).get("bind_port")
        ]

    def initialize(self) -> None:
        for _, driver in self.drivers:
            driver.initialize()

    def driver(self, name: str) -> mech_api.MechanismDriver:
        for driver_name, driver in self.drivers:
            if driver_name == name:
                return driver
        raise exception.NotFound("mechanism driver", name)

    # --- hooks ----------------------------------------------------------------------------

    def precommit(self, method: str, context: Any, reverse: bool = False) -> None:
        """Run a precommit hook; the first failure stops and raises MechanismDriverError.
        Retriable database errors (deadlock, serialization) propagate unchanged so the
        plugin can retry the whole operation."""
        for name, driver in self._ordered(reverse):
            try:
                getattr(driver, method)(context)
            except Exception as err:
                if db_api.is_retriable(err):
                    raise
                LOG.warning("mechanism driver %s failed in %s: %s", name, method, err)
                raise exceptions.MechanismDriverError(method, [_error(name, err)]) from err

    def postcommit(
        self, method: str, context: Any, stop_on_error: bool, reverse: bool = False
    ) -> list[dict[str, Any]]:
        """Run a postcommit hook; return ``[{"driver", "exc_class", "message"}]`` failures.
        With ``stop_on_error`` (creates) later drivers are skipped after a failure."""
        errors = []
        for name, driver in self._ordered(reverse):
            try:
                getattr(driver, method)(context)
            except Exception as err:  # noqa: BLE001 - every driver failure is reported
                LOG.error("mechanism driver %s failed in %s: %s", name, method, err)
                errors.append(_error(name, err))
                if stop_on_error:
                    break
        return errors

    def _ordered(self, reverse: bool) -> list[tuple[str, mech_api.MechanismDriver]]:
        return list(reversed(self.drivers)) if reverse else list(self.drivers)

    # --- binding --------------------------------------------------------------------------

    def bind_port(self, context: contexts.PortContext) -> BindingResult:
        """Bind ``context``'s port level by level; side-effect free (drivers only record
        into the context). Returns the levels or, on failure, every reason."""
        failures: list[dict[str, Any]] = []
        levels: list[dict[str, Any]] = []
        segments = [dict(s) for s in context.network.network_segments]
        if not self._binders:
            names = ", ".join(name for name, _ in self.drivers) or "none"
            failures.append({"driver": "ml2", "level": 0, "segment": None,
                             "reason": "no configured mechanism driver binds ports "
                                       f"([ml2] mechanism_drivers: {names})"})
        elif not segments:
            failures.append({"driver": "ml2", "level": 0, "segment": None,
                             "reason": "the network has no segments"})
        else:
            final = self._bind_level(context, 0, segments, levels, failures)
            if final is not None:
                return BindingResult(levels, final.vif_type or "", final.vif_details or {},
                                     final.status, [])
        return BindingResult([], mech_api.VIF_TYPE_BINDING_FAILED, {}, None, failures)

    def _bind_level(
        self,
        context: contexts.PortContext,
        level: int,
        segments_to_bind: list[dict[str, Any]],
        levels: list[dict[str, Any]],
        failures: list[dict[str, Any]],
    ) -> contexts.BindingAttempt | None:
        max_levels = self.conf.ml2.max_binding_levels
        if level >= max_levels:
            failures.append({"driver": "ml2", "level": level, "segment": None,
                             "reason": f"binding needs more than {max_levels} levels "
                                       "([ml2] max_binding_levels)"})
            return None
        tried = 0
        for name, driver in self._binders:
            if any(lv["bound_driver"] == name and lv["bound_segment"]["id"] in
                   {s["id"] for s in segments_to_bind} for lv in levels):
                continue  # this driver already bound one of these segments above: a loop
            tried += 1
            attempt = contexts.BindingAttempt(name, level, [dict(s) for s in segments_to_bind])
            context.begin_attempt(attempt)
            try:
                driver.bind_port(context)
            except Exception as err:  # noqa: BLE001 - a failing driver is a refusal
                attempt.refusals.append((None, f"bind_port raised {type(err).__name__}: {err}"))
                attempt.bound_segment = None
            finally:
                context.end_attempt()
            for segment_id, reason in attempt.refusals:
                segment = next((s for s in segments_to_bind if s["id"] == segment_id), None)
                failures.append({"driver": name, "level": level,
                                 "segment": _segment_summary(segment), "reason": reason})
            if attempt.bound_segment is None:
                if not attempt.refusals:
                    failures.append({"driver": name, "level": level, "segment": None,
                                     "reason": "did not bind (no reason given)"})
                continue
            levels.append({"bound_driver": name, "bound_segment": attempt.bound_segment})
            if attempt.next_segments is None:
                return attempt
            final = self._bind_level(context, level + 1, attempt.next_segments, levels, failures)
            if final is not None:
                return final
            levels.pop()
        if not tried:
            failures.append({"driver": "ml2", "level": level, "segment": None,
                             "reason": f"no mechanism driver left for level {level}: each one "
                                       "already bound one of its segments at a higher level"})
        return None


def _segment_summary(segment: dict[str, Any] | None) -> dict[str, Any] | None:
    if segment is None:
        return None
    return {key: segment.get(key) for key in
            ("id", "network_type", "physical_network", "segmentation_id")}


def _error(driver: str, err: BaseException) -> dict[str, Any]:
    return {"driver": driver, "exc_class": type(err).__name__, "message": str(err)}
