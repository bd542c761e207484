"""Options of compute placement, in the shared ``[scheduler]`` group: allocation ratios, build
attempts, and the compute filters and weighers with the options of the core ones.

The filter and weigher lists name entry points; their order is the order they run in (filters)
or are summed in (weighers). A third-party filter or weigher registers its own options through
a ``list_opts()`` classmethod, read when the scheduler loads it.
"""

from __future__ import annotations

from stackcore import lazy

GROUP = "scheduler"

DEFAULT_FILTERS = [
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
DEFAULT_WEIGHERS = [
    "RAMWeigher",
    "CPUWeigher",
    "DiskWeigher",
    "IoOpsWeigher",
    "NumInstancesWeigher",
    "ServerGroupSoftAffinityWeigher",
    "ServerGroupSoftAntiAffinityWeigher",
]

OPTS = lazy.options(lambda cfg: [
    cfg.FloatOpt("cpu_allocation_ratio", default=16.0, min=0.0, help="vCPU overcommit ratio."),
    cfg.FloatOpt("ram_allocation_ratio", default=1.5, min=0.0, help="RAM overcommit ratio."),
    cfg.FloatOpt("disk_allocation_ratio", default=1.0, min=0.0, help="Disk overcommit ratio."),
    cfg.IntOpt(
        "max_attempts",
        default=3,
        min=1,
        help="Hosts tried for one build before giving up (the first choice plus alternates).",
    ),
    cfg.FloatOpt(
        "host_state_max_age",
        default=0.0,
        min=0.0,
        help="Seconds a scheduler process may reuse the host states it read from the database "
        "for the next placements (0: read them for every placement). Reading them costs one "
        "query over every compute host, which dominates a placement at thousands of hosts; "
        "reused states are kept current with this process's own claims, and the claim itself "
        "(a conditional UPDATE) still refuses a host that another process filled, so a stale "
        "state never overcommits - it may only send a request to a host that turns out full "
        "(the next ranked host is tried) or, for at most this long, miss a host's change of "
        "state (disabled, down, new).",
    ),
    cfg.ListOpt(
        "compute_filters",
        default=DEFAULT_FILTERS,
        help="Compute host filters, in the order they run: entry point names in "
        "stackcore.scheduler.filters.compute. NumInstancesFilter and IoOpsFilter are "
        "available but off by default.",
    ),
    cfg.ListOpt(
        "compute_weighers",
        default=DEFAULT_WEIGHERS,
        help="Compute host weighers: entry point names in stackcore.scheduler.weighers.compute.",
    ),
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
        help="IoOpsFilter: a host with this many instances in an I/O-heavy task (building, "
        "rebuilding, evacuating, resizing or migrating, snapshotting, rescuing, deleting, "
        "rebooting...) takes no more.",
    ),
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
])
