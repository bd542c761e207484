"""The weigher contract: a plugin that ranks the candidates that passed the filters.

A weigher gives each candidate a *raw* weight; the handler normalises the raw weights of one
request to 0..1 across the candidates (min-max; all equal -> all 0, Nova's
``weights.normalize``), multiplies them by the weigher's multiplier and sums all weighers. The
highest total wins. Variants and namespaces as for filters: each family subclasses
:class:`BaseWeigher` for its
candidates (:class:`stackcore.compute.placement.weighers.HostWeigher`, namespace
``stackcore.scheduler.weighers.compute``; :class:`stackcore.volume.placement.weighers.PoolWeigher`,
namespace ``stackcore.scheduler.weighers.volume``) and builds its contract with :func:`contract`.

The multiplier is the ``[scheduler]`` option named by ``multiplier_option``; a host aggregate
whose metadata has a key of the same name overrides it for its hosts (Nova's
``get_weight_multiplier``). Weighers are called outside any transaction and must be
deterministic, side-effect free and tolerant of missing fields, like filters.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import _compat
from stackcore.plugins.contract import Contract

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.scheduler.arrays import FloatArray


class BaseWeigher(abc.ABC):
    """One weigher. ``minval``/``maxval``, when set, bound the normalisation range (a raw
    weight outside them is clamped)."""

    VERSION: ClassVar[str] = "1.0"
    capabilities: ClassVar[Mapping[str, bool]] = {}
    minval: ClassVar[float | None] = None
    maxval: ClassVar[float | None] = None
    multiplier_option: ClassVar[str] = ""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    def weight_multiplier(self) -> float:
        """The configured multiplier (1.0 when the weigher names no option)."""
        if not self.multiplier_option:
            return 1.0
        return float(self.conf.scheduler[self.multiplier_option])

    @abc.abstractmethod
    def weigh_object(self, host_state: Any, request: Any) -> float:
        """The raw weight of one candidate (the per-candidate reference path). Higher means
        more preferred once multiplied by a positive multiplier. ``inf`` is allowed: the
        normaliser puts it just above the largest finite weight (Cinder's rule for keyword
        capacities when stacking)."""

    def weigh_all(self, hosts: Any, request: Any) -> FloatArray | None:
        """The whole-set fast path: raw weights of every candidate of ``hosts`` as one float
        array, equal to ``[weigh_object(hosts.state(i), request) ...]``. None (the default)
        when there is none; declare ``capabilities = {"whole_set": True}`` when implemented."""
        return None

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        return []


def normalize(raw: FloatArray, minval: float | None = None,
              maxval: float | None = None) -> FloatArray:
    """Min-max scale ``raw`` to 0..1 (all equal -> zeros). ``inf`` entries become the largest
    finite value plus 100 times the finite range (or + 10000 when the range is 0), Cinder's
    replacement, before scaling; ``-inf`` the mirror image."""
    import numpy as np
    values = np.asarray(raw, np.float64)
    if values.size == 0:
        return values.copy()
    finite = np.isfinite(values)
    if not finite.all():
        values = values.copy()
        if finite.any():
            lo, hi = float(values[finite].min()), float(values[finite].max())
        else:
            lo = hi = 0.0
        spread = (hi - lo) * 100 if hi > lo else 10000.0
        values[values == np.inf] = hi + spread
        values[values == -np.inf] = lo - spread
        values[np.isnan(values)] = lo
    lo = float(values.min()) if minval is None else float(minval)
    hi = float(values.max()) if maxval is None else float(maxval)
    if hi <= lo:
        return np.zeros_like(values)
    if minval is not None or maxval is not None:
        values = np.clip(values, lo, hi)
    result: FloatArray = (values - lo) / (hi - lo)
    return result


def _is_variant(base: type, what: str) -> Callable[[type], list[str]]:
    def check(cls: type) -> list[str]:
        if isinstance(cls, type) and issubclass(cls, base):
            found = []
            option = getattr(cls, "multiplier_option", "")
            if not isinstance(option, str):
                found.append("multiplier_option must be a string naming a [scheduler] option")
            return found
        return [f"is not a {what} (subclass {base.__module__}.{base.__qualname__})"]

    return check


def contract(kind: str, variant: type, what: str) -> Contract:
    """The contract of a family's weighers (see :func:`stackcore.scheduler.filters.base.
    contract`)."""
    return Contract(
        family=kind,
        base=variant,
        required=("__init__", "weigh_object", "weight_multiplier"),
        capabilities={"whole_set": ("weigh_all",)},
        extra_checks=(_is_variant(variant, what),),
    )


__getattr__ = _compat.moved_names_getattr(__name__)  # names moved in 0.2 (deprecated)
