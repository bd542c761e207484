"""Options of volume placement, in the shared ``[scheduler]`` group: the volume filters and
weighers with the options of the core ones."""

from __future__ import annotations

from stackcore import lazy

GROUP = "scheduler"

DEFAULT_FILTERS = [
    "BackendStateFilter", "AvailabilityZoneFilter", "CapacityFilter", "CapabilitiesFilter",
]
DEFAULT_WEIGHERS = ["CapacityWeigher"]

OPTS = lazy.options(lambda cfg: [
    cfg.ListOpt(
        "volume_filters",
        default=DEFAULT_FILTERS,
        help="Volume pool filters, in order: entry point names in "
        "stackcore.scheduler.filters.volume.",
    ),
    cfg.ListOpt(
        "volume_weighers",
        default=DEFAULT_WEIGHERS,
        help="Volume pool weighers: entry point names in stackcore.scheduler.weighers.volume.",
    ),
    cfg.FloatOpt("capacity_weight_multiplier", default=1.0,
                 help="Volume CapacityWeigher: > 0 spreads by virtual free capacity, < 0 stacks."),
    cfg.FloatOpt("allocated_capacity_weight_multiplier", default=-1.0,
                 help="Volume AllocatedCapacityWeigher: < 0 prefers the least allocated pool."),
    cfg.FloatOpt("volume_number_multiplier", default=-1.0,
                 help="Volume VolumeNumberWeigher: < 0 prefers the pool with fewer volumes."),
])
