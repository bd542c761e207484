"""Options of the filter scheduler and of its core filters and weighers (group ``[scheduler]``).

The filter and weigher lists name entry points; their order is the order they run in (filters)
or are summed in (weighers). A third-party filter or weigher registers its own options through
a ``list_opts()`` classmethod, read when the scheduler loads it.
"""

from __future__ import annotations

from oslo_config import cfg

GROUP = "scheduler"

DEFAULT_COMPUTE_FILTERS = [
    "ComputeFilter",
    "AvailabilityZoneFilter",
    "RamFilter",
    "CoreFilter",
    "DiskFilter",
    "ImagePropertiesFilter",
    "ComputeCapabilitiesFilter",
    "AggregateInstanceExtraSpecsFilter",
    "ServerGroupAntiAffinityFilter",
    "ServerGroupAffinityFilter",
]
DEFAULT_COMPUTE_WEIGHERS = [
    "RAMWeigher",
    "CPUWeigher",
    "DiskWeigher",
    "IoOpsWeigher",
    "NumInstancesWeigher",
    "ServerGroupSoftAffinityWeigher",
    "ServerGroupSoftAntiAffinityWeigher",
]
DEFAULT_VOLUME_FILTERS = [
    "BackendStateFilter", "AvailabilityZoneFilter", "CapacityFilter", "CapabilitiesFilter",
]
DEFAULT_VOLUME_WEIGHERS = ["CapacityWeigher"]

FRAMEWORK_OPTS = [
    cfg.ListOpt(
        "compute_filters",
        default=DEFAULT_COMPUTE_FILTERS,
        help="Compute host filters, in the order they run: entry point names in "
        "stackcore.scheduler.filters.compute. NumInstancesFilter and IoOpsFilter are "
        "available but off by default.",
    ),
    cfg.ListOpt(
        "compute_weighers",
        default=DEFAULT_COMPUTE_WEIGHERS,
        help="Compute host weighers: entry point names in stackcore.scheduler.weighers.compute.",
    ),
    cfg.ListOpt(
        "volume_filters",
        default=DEFAULT_VOLUME_FILTERS,
        help="Volume pool filters, in order: entry point names in "
        "stackcore.scheduler.filters.volume.",
    ),
    cfg.ListOpt(
        "volume_weighers",
        default=DEFAULT_VOLUME_WEIGHERS,
        help="Volume pool weighers: entry point names in stackcore.scheduler.weighers.volume.",
    ),
]

FILTER_OPTS = [
    cfg.IntOpt(
        "max_instances_per_host",
        default=50,
        min=1,
        help="NumInstancesFilter: a host with this many instances takes no more.",
    ),
    cfg.IntOpt(
        "max_io_ops_per_host",
        default=8,
        min=1,
        help="IoOpsFilter: a host with this many instances in a task (building, deleting, "
        "rebooting...) takes no more.",
    ),
]

WEIGHER_OPTS = [
    cfg.FloatOpt("ram_weight_multiplier", default=1.0,
                 help="RAMWeigher: > 0 spreads by free RAM, < 0 stacks."),
    cfg.FloatOpt("cpu_weight_multiplier", default=1.0,
                 help="CPUWeigher: > 0 spreads by free vCPUs, < 0 stacks."),
    cfg.FloatOpt("disk_weight_multiplier", default=1.0,
                 help="DiskWeigher: > 0 spreads by free disk, < 0 stacks."),
    cfg.FloatOpt("io_ops_weight_multiplier", default=-1.0,
                 help="IoOpsWeigher: < 0 prefers hosts with fewer instances in a task."),
    cfg.FloatOpt("num_instances_weight_multiplier", default=0.0,
                 help="NumInstancesWeigher: > 0 prefers hosts with more instances, < 0 fewer."),
    cfg.FloatOpt("soft_affinity_weight_multiplier", default=1.0, min=0.0,
                 help="ServerGroupSoftAffinityWeigher: preference for hosts holding members of "
                 "the server's soft-affinity group."),
    cfg.FloatOpt("soft_anti_affinity_weight_multiplier", default=1.0, min=0.0,
                 help="ServerGroupSoftAntiAffinityWeigher: preference for hosts holding fewer "
                 "members of the server's soft-anti-affinity group."),
    cfg.FloatOpt("capacity_weight_multiplier", default=1.0,
                 help="Volume CapacityWeigher: > 0 spreads by virtual free capacity, < 0 stacks."),
    cfg.FloatOpt("allocated_capacity_weight_multiplier", default=-1.0,
                 help="Volume AllocatedCapacityWeigher: < 0 prefers the least allocated pool."),
    cfg.FloatOpt("volume_number_multiplier", default=-1.0,
                 help="Volume VolumeNumberWeigher: < 0 prefers the pool with fewer volumes."),
]

OPTS = [*FRAMEWORK_OPTS, *FILTER_OPTS, *WEIGHER_OPTS]


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(GROUP, list(OPTS))]
