"""The contexts handed to mechanism drivers (implementations of the ABCs in
:mod:`stackcore.network.contracts.mechanism_driver`). Built by the plugin from plain dicts, so a
driver
never holds a database row or session."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stackcore import exception
from stackcore.network.contracts import mechanism_driver as api


class NetworkContext(api.NetworkContext):
    def __init__(self, current: Mapping[str, Any], original: Mapping[str, Any] | None = None):
        self._current = copy.deepcopy(dict(current))
        self._original = copy.deepcopy(dict(original)) if original is not None else None

    @property
    def current(self) -> Mapping[str, Any]:
        return self._current

    @property
    def original(self) -> Mapping[str, Any] | None:
        return self._original

    @property
    def network_segments(self) -> Sequence[Mapping[str, Any]]:
        return list(self._current.get("segments", []))


class SubnetContext(api.SubnetContext):
    def __init__(
        self,
        current: Mapping[str, Any],
        network: NetworkContext,
        original: Mapping[str, Any] | None = None,
    ) -> None:
        self._current = copy.deepcopy(dict(current))
        self._original = copy.deepcopy(dict(original)) if original is not None else None
        self._network = network

    @property
    def current(self) -> Mapping[str, Any]:
        return self._current

    @property
    def original(self) -> Mapping[str, Any] | None:
        return self._original

    @property
    def network(self) -> NetworkContext:
        return self._network


@dataclasses.dataclass
class BindingAttempt:
    """What one driver did at one level of a binding (filled by the context's binding API)."""

    driver: str
    level: int
    segments_to_bind: list[dict[str, Any]]
    bound_segment: dict[str, Any] | None = None
    vif_type: str | None = None
    vif_details: dict[str, Any] | None = None
    status: str | None = None
    next_segments: list[dict[str, Any]] | None = None
    refusals: list[tuple[str | None, str]] = dataclasses.field(default_factory=list)


class PortContext(api.PortContext):
    """A port context. ``levels`` are the stored binding levels as
    ``[{"bound_driver", "bound_segment"}]``; ``agent_lookup(host, agent_type)`` serves
    :meth:`host_agents`."""

    def __init__(
        self,
        current: Mapping[str, Any],
        network: NetworkContext,
        levels: Sequence[Mapping[str, Any]] = (),
        original: Mapping[str, Any] | None = None,
        original_levels: Sequence[Mapping[str, Any]] | None = None,
        agent_lookup: Callable[[str, str], list[dict[str, Any]]] | None = None,
    ) -> None:
        self._current = copy.deepcopy(dict(current))
        self._original = copy.deepcopy(dict(original)) if original is not None else None
        self._network = network
        self._levels = [copy.deepcopy(dict(level)) for level in levels]
        self._original_levels = (
            [dict(level) for level in original_levels] if original_levels is not None else None
        )
        self._agent_lookup = agent_lookup
        self._attempt: BindingAttempt | None = None

    # --- port state -----------------------------------------------------------------------

    @property
    def current(self) -> Mapping[str, Any]:
        return self._current

    @property
    def original(self) -> Mapping[str, Any] | None:
        return self._original

    @property
    def network(self) -> NetworkContext:
        return self._network

    @property
    def host(self) -> str:
        return str(self._current.get("binding:host_id") or "")

    @property
    def original_host(self) -> str | None:
        return None if self._original is None else str(self._original.get("binding:host_id"))

    @property
    def vif_type(self) -> str:
        return str(self._current.get("binding:vif_type", api.VIF_TYPE_UNBOUND))

    @property
    def vif_details(self) -> Mapping[str, Any]:
        return dict(self._current.get("binding:vif_details") or {})

    @property
    def binding_levels(self) -> Sequence[Mapping[str, Any]]:
        return list(self._levels)

    @property
    def original_binding_levels(self) -> Sequence[Mapping[str, Any]] | None:
        return self._original_levels

    @property
    def top_bound_segment(self) -> Mapping[str, Any] | None:
        return self._levels[0]["bound_segment"] if self._levels else None

    @property
    def bottom_bound_segment(self) -> Mapping[str, Any] | None:
        return self._levels[-1]["bound_segment"] if self._levels else None

    def host_agents(self, agent_type: str) -> list[dict[str, Any]]:
        if self._agent_lookup is None or not self.host:
            return []
        return self._agent_lookup(self.host, agent_type)

    # --- binding API (valid inside bind_port only) ----------------------------------------

    def begin_attempt(self, attempt: BindingAttempt) -> None:
        self._attempt = attempt

    def end_attempt(self) -> BindingAttempt:
        attempt = self._require_attempt("end_attempt")
        self._attempt = None
        return attempt

    def _require_attempt(self, method: str) -> BindingAttempt:
        if self._attempt is None:
            raise exception.InvalidState(f"PortContext.{method}() is only valid inside bind_port")
        return self._attempt

    @property
    def segments_to_bind(self) -> Sequence[Mapping[str, Any]]:
        return list(self._require_attempt("segments_to_bind").segments_to_bind)

    def _offered(self, attempt: BindingAttempt, segment_id: str) -> dict[str, Any]:
        for segment in attempt.segments_to_bind:
            if segment["id"] == segment_id:
                return dict(segment)
        raise exception.Invalid(
            "segment_id", f"{segment_id!r} is not one of the segments to bind at this level",
            segment_id,
        )

    def _check_unbound(self, attempt: BindingAttempt) -> None:
        if attempt.bound_segment is not None:
            raise exception.InvalidState(
                f"mechanism driver {attempt.driver!r} bound the port twice at level "
                f"{attempt.level}"
            )

    def set_binding(
        self,
        segment_id: str,
        vif_type: str,
        vif_details: Mapping[str, Any],
        status: str | None = None,
    ) -> None:
        attempt = self._require_attempt("set_binding")
        self._check_unbound(attempt)
        if not isinstance(vif_type, str) or vif_type in (
            api.VIF_TYPE_UNBOUND, api.VIF_TYPE_BINDING_FAILED, ""
        ):
            raise exception.Invalid("vif_type", "must name a real VIF type", vif_type)
        attempt.bound_segment = self._offered(attempt, segment_id)
        attempt.vif_type = vif_type
        attempt.vif_details = copy.deepcopy(dict(vif_details))
        attempt.status = status

    def continue_binding(
        self, segment_id: str, next_segments_to_bind: Sequence[Mapping[str, Any]]
    ) -> None:
        attempt = self._require_attempt("continue_binding")
        self._check_unbound(attempt)
        if not next_segments_to_bind:
            raise exception.Invalid("next_segments_to_bind", "must not be empty")
        known = {s["id"]: s for s in self._network.network_segments}
        for segment in next_segments_to_bind:
            if segment.get("id") not in known:
                raise exception.Invalid(
                    "next_segments_to_bind",
                    f"segment {segment.get('id')!r} is not a segment of network "
                    f"{self._network.current['id']}",
                )
        attempt.bound_segment = self._offered(attempt, segment_id)
        attempt.next_segments = [dict(known[s["id"]]) for s in next_segments_to_bind]

    def refuse(self, reason: str, segment_id: str | None = None) -> None:
        attempt = self._require_attempt("refuse")
        attempt.refusals.append((segment_id, str(reason)))
