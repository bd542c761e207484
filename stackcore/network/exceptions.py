"""Errors of the network family, all subclasses of the core hierarchy so callers can catch
``Conflict`` / ``DriverError`` without knowing the network family."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stackcore import exception


class SegmentIdInUse(exception.Conflict):
    """A provider segment asks for an ID (or a flat physical network) already allocated."""

    def __init__(self, network_type: str, physical_network: str | None, segmentation_id: int
                 | None) -> None:
        where = f" on physical network {physical_network!r}" if physical_network else ""
        what = (f"{network_type} ID {segmentation_id}" if network_type != "flat"
                else "the flat network")
        super().__init__(
            f"{what}{where} is already allocated",
            network_type=network_type,
            physical_network=physical_network,
            segmentation_id=segmentation_id,
        )


class NoNetworkAvailable(exception.QuotaExceeded):
    """No project network type has a free segment left."""

    def __init__(self, tried: Sequence[str]) -> None:
        super().__init__(
            "no project network is available for allocation: every ID of "
            f"{', '.join(tried) or 'no type'} (ml2 project_network_types) is in use",
            tried=list(tried),
        )


class IpAddressExhausted(exception.QuotaExceeded):
    def __init__(self, subnet_id: str) -> None:
        super().__init__(
            f"no free IP address left in the allocation pools of subnet {subnet_id}",
            subnet_id=subnet_id,
        )


class MechanismDriverError(exception.DriverError):
    """One or more mechanism drivers failed a hook.

    ``method`` is the hook (``create_port_postcommit`` ...); ``errors`` lists
    ``{"driver", "exc_class", "message"}`` per failing driver, in call order.
    """

    def __init__(self, method: str, errors: Sequence[dict[str, Any]]) -> None:
        detail = "; ".join(f"{e['driver']}: {e['exc_class']}: {e['message']}" for e in errors)
        super().__init__(f"{method} failed: {detail}", method=method, errors=list(errors))


class PortBindingFailed(exception.DriverError):
    """A port could not be bound. ``reasons`` are the per-driver, per-segment sentences."""

    def __init__(self, port_id: str, host: str, reasons: Sequence[str]) -> None:
        super().__init__(
            f"port {port_id} could not be bound on host {host!r}: " + "; ".join(reasons),
            port_id=port_id,
            host=host,
            reasons=list(reasons),
        )
