"""Broken scheduler filters and weighers, for compute hosts and volume pools: each subclasses a
core plugin (RamFilter, RAMWeigher, CapacityFilter, CapacityWeigher) and breaks one rule."""

from __future__ import annotations

import random
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from stackcore.compute.placement.filters import RamFilter
from stackcore.compute.placement.weighers import RAMWeigher
from stackcore.volume.placement.filters import CapacityFilter
from stackcore.volume.placement.weighers import CapacityWeigher
from tests.kit.registry import Broken

M = "tests.kit.scheduler"
FAMILIES = {"scheduler.compute_filters": ("TestComputeFilterConformance::", RamFilter),
            "scheduler.volume_filters": ("TestVolumeFilterConformance::", CapacityFilter),
            "scheduler.compute_weighers": ("TestComputeWeigherConformance::", RAMWeigher),
            "scheduler.volume_weighers": ("TestVolumeWeigherConformance::", CapacityWeigher)}


def _random_answers(self: Any, host_state: Any, request: Any) -> bool:
    return random.random() < 0.5  # not deterministic: the defect


def _mutates_request_filter(self: Any, host_state: Any, request: Any) -> bool:
    request.extra_specs["stackcore:seen"] = "1"
    return bool(type(self).__mro__[1].host_passes(self, host_state, request))


def _silent_reason(self: Any, host_state: Any, request: Any) -> str:
    return ""


def _silent_summary(self: Any, rejected: Any, request: Any) -> str:
    return ""


def _everyone_passes(self: Any, hosts: Any, request: Any) -> Any:
    return np.ones(len(hosts), bool)


def _random_weight(self: Any, host_state: Any, request: Any) -> float:
    return random.random()


def _mutates_request_weigher(self: Any, host_state: Any, request: Any) -> float:
    request.extra_specs["stackcore:seen"] = "1"
    return float(type(self).__mro__[1].weigh_object(self, host_state, request))


def _zero_weights(self: Any, hosts: Any, request: Any) -> Any:
    return np.zeros(len(hosts), np.float64)


BREAKS: dict[str, dict[str, tuple[dict[str, Any], str, str, str]]] = {
    # name: (overrides, test, words in the message, the defect)
    "filters": {
        "random": ({"host_passes": _random_answers}, "test_same_input_same_answer",
                   "candidates whose host_passes() answer changed on the same input",
                   "answers at random"),
        "mutates": ({"host_passes": _mutates_request_filter}, "test_inputs_unchanged",
                    "the request after the plugin ran: expected",
                    "changes the request it judges"),
        "silent": ({"reason": _silent_reason, "summarize": _silent_summary},
                   "test_rejections_have_reasons",
                   "reason() for a rejected candidate: expected a sentence, got ''",
                   "rejects without a reason"),
        "whole-set-disagrees": ({"filter_all": _everyone_passes},
                                "test_whole_set_agrees_with_per_host",
                                "candidates where the paths disagree (filter_all() vs "
                                "host_passes())",
                                "the whole-set path lets everyone pass"),
    },
    "weighers": {
        "random": ({"weigh_object": _random_weight}, "test_same_input_same_answer",
                   "candidates whose weigh_object() changed on the same input",
                   "weighs at random"),
        "mutates": ({"weigh_object": _mutates_request_weigher}, "test_inputs_unchanged",
                    "the request after the plugin ran: expected",
                    "changes the request it weighs"),
        "whole-set-disagrees": ({"weigh_all": _zero_weights},
                                "test_whole_set_agrees_with_per_host",
                                "(candidate, weigh_all(), weigh_object()) where the paths "
                                "disagree", "the whole-set path weighs everyone 0"),
    },
}

ZOO: list[Broken] = []
for _family, (_prefix, _base) in FAMILIES.items():
    _kind = "filters" if _family.endswith("filters") else "weighers"
    _short = _family.split(".")[1]
    for _name, (_over, _test, _expect, _defect) in BREAKS[_kind].items():
        _cls_name = f"{_short.title().replace('_', '')}_{_name.replace('-', '_')}"
        _cls = type(_cls_name, (_base,), {**_over, "__module__": M})
        setattr(sys.modules[__name__], _cls_name, _cls)
        ZOO.append(Broken(_family, f"zoo-{_name}", f"{M}:{_cls_name}", (_prefix + _test,),
                          _expect, "fail", "", _defect,
                          "whole_set" if "whole_set" in _test else ""))
    _liar_name = f"{_short.title().replace('_', '')}_liar"
    _caps: Mapping[str, bool] = {"whole_set": False}
    _liar = type(_liar_name, (_base,), {"capabilities": _caps, "__module__": M})
    setattr(sys.modules[__name__], _liar_name, _liar)
    ZOO.append(Broken(_family, "zoo-liar-whole_set", f"{M}:{_liar_name}",
                      (_prefix + "test_whole_set_agrees_with_per_host",),
                      "capability 'whole_set' is declared unsupported", "unexpected-success",
                      "", "has the whole-set path but declares it unsupported", "whole_set"))
