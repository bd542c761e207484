"""The filter contract: a plugin that says which candidates (hosts or pools) can take a request.

The scheduler framework knows no family: each family that places something subclasses
:class:`BaseFilter` once for its candidates (compute:
:class:`stackcore.compute.placement.filters.HostFilter`, namespace
``stackcore.scheduler.filters.compute``; volume:
:class:`stackcore.volume.placement.filters.PoolFilter`, namespace
``stackcore.scheduler.filters.volume``) and builds its contract with :func:`contract`. The
namespaces are separate (rather than one namespace with a ``kind`` attribute) so that a volume
filter can never be enabled in the compute list by mistake: the loader refuses it by namespace
and the contract refuses a class of the wrong variant.

Every filter is called by the scheduler's request handler only, outside any database
transaction, on a snapshot of the candidates; it must be deterministic and side-effect free
(the conformance suite checks both), and must tolerate missing or ``unknown`` fields (a host
that never reported, a pool reporting ``unknown`` capacity) by rejecting or passing - never by
raising.
"""

from __future__ import annotations

import abc
import collections
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from stackcore import _compat
from stackcore.plugins.contract import Contract

if TYPE_CHECKING:
    from oslo_config import cfg

    from stackcore.scheduler.arrays import BoolArray, IntArray

#: at most this many rejected candidates are asked for a reason when summarising
REASON_SAMPLE = 200


class BaseFilter(abc.ABC):
    """One filter. Built once per scheduler with the cloud's configuration.

    Class attributes:

    * ``VERSION`` - a non-empty string;
    * ``capabilities`` - ``{"whole_set": True}`` when :meth:`filter_all` is implemented;
    * ``run_filter_once_per_request`` - True when the answer cannot change between the
      instances of one multi-create request (zone, image, flavor capabilities): the handler
      may then reuse the first answer;
    * ``OPTS`` - nothing here; options live in ``[scheduler]`` (see
      the family's placement options), a third-party filter adds ``list_opts()``.
    """

    VERSION: ClassVar[str] = "1.0"
    capabilities: ClassVar[Mapping[str, bool]] = {}
    run_filter_once_per_request: ClassVar[bool] = False

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @abc.abstractmethod
    def host_passes(self, host_state: Any, request: Any) -> bool:
        """Whether the one candidate ``host_state`` can take ``request``.

        Called per candidate (the reference path, used when :meth:`filter_all` is not
        implemented, and by the conformance suite). Must not raise for missing data: reject.
        """

    def filter_all(self, hosts: Any, request: Any) -> BoolArray | None:
        """The whole-set fast path: a boolean array, one entry per candidate of ``hosts``, equal
        to ``[host_passes(hosts.state(i), request) for i in range(len(hosts))]``.

        Implementations work on the set's numpy columns and code tables; they must not build a
        Python object per host. Return None (the default) when there is no fast path.
        Declare ``capabilities = {"whole_set": True}`` when implementing it.
        """
        return None

    def reason(self, host_state: Any, request: Any) -> str:
        """Why ``host_state`` was rejected, in words, without its name (reasons are grouped
        across candidates), e.g. ``"wants zone 'az2', it is in 'nova'"``."""
        return "did not pass"

    def summarize(self, rejected: Sequence[Any], request: Any) -> str:
        """One phrase for all rejected candidates (a sample of at most :data:`REASON_SAMPLE`).

        The default groups :meth:`reason` and gives the most common three with their counts;
        capacity filters override it to name the best rejected candidate ("needs 4096 MB, the
        best had 2048 MB free").
        """
        counts = collections.Counter(self.reason(h, request) for h in rejected)
        if len(counts) == 1:
            return next(iter(counts))
        return "; ".join(f"{text} ({n})" for text, n in counts.most_common(3))

    @classmethod
    def list_opts(cls) -> list[tuple[str, Sequence[cfg.Opt]]]:
        """Options this filter reads beyond the core's ``[scheduler]`` ones."""
        return []


def _is_variant(base: type, what: str) -> Callable[[type], list[str]]:
    def check(cls: type) -> list[str]:
        if isinstance(cls, type) and issubclass(cls, base):
            return []
        return [f"is not a {what} (subclass {base.__module__}.{base.__qualname__})"]

    return check


def _once_flag(cls: type) -> list[str]:
    value = getattr(cls, "run_filter_once_per_request", False)
    return [] if isinstance(value, bool) else ["run_filter_once_per_request must be a bool"]


def contract(kind: str, variant: type, what: str) -> Contract:
    """The contract of a family's filters: subclasses of ``variant`` (the family's subclass of
    :class:`BaseFilter`, e.g. a compute host filter) with the base's methods and the
    ``whole_set`` capability. ``kind`` names the plugin kind (e.g.
    ``scheduler.compute_filters``), ``what`` the variant in messages."""
    return Contract(
        family=kind,
        base=variant,
        required=("__init__", "host_passes", "reason", "summarize"),
        capabilities={"whole_set": ("filter_all",)},
        extra_checks=(_is_variant(variant, what), _once_flag),
    )


def by_code(codes: IntArray, table: Sequence[Any], check: Any) -> BoolArray:
    """Evaluate ``check`` once per distinct value of a code column and broadcast the answers to
    every candidate: the core of every whole-set filter over structured data."""
    import numpy as np
    answers = np.fromiter((bool(check(value)) for value in table), bool, len(table))
    result: BoolArray = answers[codes] if len(table) else np.zeros(len(codes), bool)
    return result


__getattr__ = _compat.moved_names_getattr(__name__)  # names moved in 0.2 (deprecated)
