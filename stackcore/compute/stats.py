"""The hypervisor stats schema: what ``get_available_resource`` must report.

One table, three uses: validation of every report, the docs' stats table, and the conformance
suite's schema test all read :data:`SCHEMA` and :data:`FIELDS`.
"""

from __future__ import annotations

from typing import Any

from stackcore import stats

#: (field, JSON type, meaning) - the documented minimum statistics of a hypervisor driver.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("vcpus", "integer >= 0", "physical CPU threads the host offers"),
    ("memory_mb", "integer >= 0", "total memory in MiB"),
    ("local_gb", "integer >= 0", "total local disk for instances in GiB"),
    ("vcpus_used", "integer >= 0", "vCPUs given to instances"),
    ("memory_mb_used", "integer >= 0", "memory in use in MiB"),
    ("local_gb_used", "integer >= 0", "local disk in use in GiB"),
    ("hypervisor_type", "string", "e.g. QEMU, KVM, fake"),
    ("hypervisor_version", "integer >= 0", "version as major*1000000 + minor*1000 + micro"),
    ("hypervisor_hostname", "string", "the node name the hypervisor reports"),
    ("cpu_info", "object", "arch, model, vendor, topology {sockets, cores, threads}, features"),
    ("supported_instances", "array", "[architecture, hypervisor_type, vm_mode] triples"),
)

_COUNT = {"type": "integer", "minimum": 0}
_NAME = {"type": "string", "minLength": 1}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [name for name, _, _ in FIELDS],
    "properties": {
        "vcpus": _COUNT,
        "memory_mb": _COUNT,
        "local_gb": _COUNT,
        "vcpus_used": _COUNT,
        "memory_mb_used": _COUNT,
        "local_gb_used": _COUNT,
        "hypervisor_type": _NAME,
        "hypervisor_version": _COUNT,
        "hypervisor_hostname": _NAME,
        "cpu_info": {
            "type": "object",
            "required": ["arch", "model", "vendor", "topology", "features"],
            "properties": {
                "arch": _NAME,
                "model": {"type": "string"},
                "vendor": {"type": "string"},
                "topology": {
                    "type": "object",
                    "required": ["sockets", "cores", "threads"],
                    "properties": {
                        "sockets": {"type": "integer", "minimum": 1},
                        "cores": {"type": "integer", "minimum": 1},
                        "threads": {"type": "integer", "minimum": 1},
                    },
                },
                "features": {"type": "array", "items": {"type": "string"}},
            },
        },
        "supported_instances": {
            "type": "array",
            "items": {
                "type": "array",
                "minItems": 3,
                "maxItems": 3,
                "items": {"type": "string", "minLength": 1},
            },
        },
    },
}


def validate(report: Any, source: str) -> dict[str, Any]:
    """Validate one hypervisor stats report; see :func:`stackcore.stats.validate`."""
    return stats.validate(SCHEMA, report, source)
