"""The filter scheduler's request handler: run the enabled filters in order, weigh what passed,
rank it, and keep a trace that explains every rejection.

One handler serves one kind of candidate (compute hosts, volume pools: whatever a family
places); :func:`load` builds it from the family's filter and weigher lists through the plugin
loader, so each plugin is found by entry point and verified against its contract at start-up.

Per filter the handler uses the whole-set path (:meth:`BaseFilter.filter_all`) when the filter
has one, else calls ``host_passes`` for each candidate still in the running. Filtering stops at
zero candidates. Rejections are kept as index arrays; their sentences ("RamFilter rejected 37
host(s): needs 4096 MB, the best had 2048 MB free") are only built when asked for (a failed
request or an explain call), so a successful request pays nothing for explainability.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from stackcore import conf as sc_conf
from stackcore.plugins import loader
from stackcore.plugins.contract import Contract
from stackcore.scheduler.filters import base as filter_base
from stackcore.scheduler.weighers import base as weigher_base

if TYPE_CHECKING:
    from stackcore.scheduler.arrays import FloatArray, IntArray


@dataclasses.dataclass
class FilterStep:
    """What one filter did to one request."""

    name: str
    before: int
    after: int
    rejected_idx: IntArray
    filter: filter_base.BaseFilter
    _summary: str | None = None

    @property
    def rejected(self) -> int:
        return int(self.rejected_idx.size)

    def summary(self, hosts: Any, request: Any) -> str:
        if self._summary is None:
            sample = [hosts.state(int(i)) for i in self.rejected_idx[:filter_base.REASON_SAMPLE]]
            self._summary = self.filter.summarize(sample, request) if sample else ""
        return self._summary


@dataclasses.dataclass(frozen=True)
class Ranked:
    """One candidate in the weighed ranking: total weight and each weigher's share of it
    (normalised raw weight times multiplier)."""

    host: str
    weight: float
    weights: Mapping[str, float]


@dataclasses.dataclass
class Decision:
    """The outcome of filtering and weighing one request."""

    noun: str
    total: int
    steps: list[FilterStep]
    passed: IntArray  # indices of the candidates that passed every filter, ascending
    scores: FloatArray  # total weight per entry of ``passed``
    parts: dict[str, FloatArray]  # weigher -> contribution per entry of ``passed``
    hosts: Any
    request: Any
    excluded: int = 0
    _order: IntArray | None = None

    def _rank(self, n: int | None) -> IntArray:
        """Positions in ``passed`` of the best ``n`` (all: None), best first; ties keep
        candidate order (a stable sort). For small ``n`` only the candidates at or above the
        n-th best weight are sorted, which is what makes a request on 100,000 hosts cheap."""
        import numpy as np  # on first use: loading the scheduler must not pay for it

        size = self.scores.size
        if n is None or n >= size:
            if self._order is None:
                self._order = np.argsort(-self.scores, kind="stable")
            return self._order
        if n <= 0:
            return np.empty(0, np.int64)
        kth = np.partition(-self.scores, n - 1)[n - 1]
        chosen = np.flatnonzero(-self.scores <= kth)
        ranked = chosen[np.argsort(-self.scores[chosen], kind="stable")]
        return ranked[:n]

    @property
    def order(self) -> IntArray:
        """Candidate indices, best first."""
        result: IntArray = self.passed[self._rank(None)]
        return result

    @property
    def names(self) -> list[str]:
        return [self.hosts.names[int(i)] for i in self.order]

    def top(self, n: int) -> list[str]:
        """The names of the best ``n`` candidates, best first."""
        return [self.hosts.names[int(self.passed[k])] for k in self._rank(n)]

    def reasons(self) -> list[str]:
        """One sentence per filter that rejected candidates, in filter order."""
        found = []
        if self.excluded:
            found.append(f"{self.excluded} {self.noun}(s) excluded: already tried")
        for step in self.steps:
            if step.rejected:
                found.append(f"{step.name} rejected {step.rejected} {self.noun}(s): "
                             f"{step.summary(self.hosts, self.request)}")
        return found

    def ranking(self, limit: int | None = None) -> list[Ranked]:
        return [
            Ranked(self.hosts.names[int(self.passed[k])], float(self.scores[k]),
                   {name: float(part[k]) for name, part in self.parts.items()})
            for k in self._rank(limit)
        ]

    def to_dict(self, limit: int | None = None) -> dict[str, Any]:
        """JSON form for the explain call: the filter trace and the weighed ranking."""
        return {
            "candidates": self.total,
            "excluded": self.excluded,
            "filters": [
                {"name": s.name, "before": s.before, "after": s.after, "rejected": s.rejected,
                 "reason": s.summary(self.hosts, self.request) if s.rejected else None}
                for s in self.steps
            ],
            "passed": int(self.passed.size),
            "reasons": self.reasons(),
            "ranking": [dataclasses.asdict(r) for r in self.ranking(limit)],
        }


class Handler:
    """Filters then weighers for one kind of candidate."""

    def __init__(self, noun: str, filters: Sequence[tuple[str, filter_base.BaseFilter]],
                 weighers: Sequence[tuple[str, weigher_base.BaseWeigher]]) -> None:
        self.noun = noun
        self.filters = list(filters)
        self.weighers = list(weighers)

    def run(self, hosts: Any, request: Any, *, exclude: Sequence[str] = (),
            per_host: bool = False) -> Decision:
        """Filter and weigh ``hosts`` (a HostSet or PoolSet) for ``request``.

        ``exclude`` names candidates never to return (hosts already tried). ``per_host``
        forces the per-candidate reference paths (conformance, debugging)."""
        import numpy as np  # on first use: loading the scheduler must not pay for it

        n = len(hosts)
        alive = np.ones(n, bool)
        excluded = 0
        for name in exclude:
            i = hosts.index.get(name)
            if i is not None and alive[i]:
                alive[i] = False
                excluded += 1
        steps: list[FilterStep] = []
        for name, flt in self.filters:
            before = int(alive.sum())
            if before == 0:
                break
            mask = None if per_host else flt.filter_all(hosts, request)
            if mask is None:
                idx = np.flatnonzero(alive)
                ok = np.fromiter((bool(flt.host_passes(hosts.state(int(i)), request))
                                  for i in idx), bool, idx.size)
                kept = np.zeros(n, bool)
                kept[idx[ok]] = True
            else:
                kept = alive & np.asarray(mask, bool)
            rejected = np.flatnonzero(alive & ~kept)
            alive = kept
            steps.append(FilterStep(name, before, before - int(rejected.size), rejected, flt))
        idx = np.flatnonzero(alive)
        all_alive = idx.size == n
        total = np.zeros(idx.size, np.float64)
        parts: dict[str, FloatArray] = {}
        if idx.size:
            for name, weigher in self.weighers:
                multiplier = self._multipliers(weigher, hosts, idx)
                if np.isscalar(multiplier) and multiplier == 0:
                    continue  # contributes nothing (e.g. NumInstancesWeigher by default)
                raw = None if per_host else weigher.weigh_all(hosts, request)
                if raw is None:
                    values = np.fromiter(
                        (float(weigher.weigh_object(hosts.state(int(i)), request)) for i in idx),
                        np.float64, idx.size)
                else:
                    values = np.asarray(raw, np.float64)
                    values = values if all_alive else values[idx]
                norm = weigher_base.normalize(values, weigher.minval, weigher.maxval)
                part = multiplier * norm
                parts[name] = part
                total += part
        return Decision(self.noun, n, steps, idx, total, parts, hosts, request, excluded)

    @staticmethod
    def _multipliers(weigher: weigher_base.BaseWeigher, hosts: Any, idx: IntArray) -> Any:
        """The weigher's multiplier per candidate: the configured value, overridden for hosts
        in an aggregate whose metadata sets the option (the smallest value wins, Nova)."""
        import numpy as np  # on first use: loading the scheduler must not pay for it

        base = weigher.weight_multiplier()
        aggs = getattr(hosts, "aggs", None)
        option = weigher.multiplier_option
        if not aggs or not option or not any(option in meta for meta in aggs):
            return base
        per_code = np.full(len(aggs), base, np.float64)
        for code, meta in enumerate(aggs):
            values = meta.get(option)
            if values:
                try:
                    per_code[code] = min(float(v) for v in values)
                except ValueError:
                    pass  # a non-numeric override is ignored, as in Nova
        return per_code[hosts.agg_code[idx]]


@dataclasses.dataclass(frozen=True)
class PluginList:
    """Which plugins of one namespace to load, in order, and the contract they must meet."""

    namespace: str
    contract: Contract
    names: Sequence[str]


def load(conf: cfg.ConfigOpts, noun: str, filters: PluginList, weighers: PluginList) -> Handler:
    """Load, verify and instantiate ``filters`` and ``weighers`` for candidates called ``noun``
    (``host``, ``pool``) in reasons, registering any options they declare."""
    loaded_filters = loader.load_ordered(filters.namespace, list(filters.names), filters.contract)
    loaded_weighers = loader.load_ordered(weighers.namespace, list(weighers.names),
                                          weighers.contract)
    for plugin in (*loaded_filters, *loaded_weighers):
        opts = plugin.cls.list_opts()
        if opts:
            sc_conf.register(conf, opts)
    return Handler(noun, [(p.name, p.cls(conf)) for p in loaded_filters],
                   [(p.name, p.cls(conf)) for p in loaded_weighers])
