"""What must hold in the database after a fault, read with plain SQL (judging what is stored,
not what the API believes). Each function returns a list of problems (empty: all good), each
naming the resource and the values that disagree. Shared by the backend-fault tests and the
chaos test (tests/functional/chaos)."""

from __future__ import annotations

import sqlalchemy as sa

from tests.functional.concurrency.invariants import ip_problems

VOLUME_TRANSIENT = ("creating", "downloading", "attaching", "detaching", "extending",
                    "uploading", "deleting")


def _rows(engine: sa.Engine, sql: str, **params: object) -> list[sa.Row[object]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def transient_problems(engine: sa.Engine) -> list[str]:
    """Nothing left BUILDING, with a task, creating/deleting/attaching/...: every resource of
    every family in a final state."""
    problems = [f"server {r.uuid} {r.vm_state} ({r.task_state})" for r in _rows(
        engine, "SELECT uuid, vm_state, task_state FROM instances WHERE vm_state <> 'deleted' "
        "AND (vm_state = 'building' OR task_state IS NOT NULL)")]
    transient = ", ".join(f"'{status}'" for status in VOLUME_TRANSIENT)  # constants
    problems += [f"volume {r.id} {r.status}" for r in _rows(
        engine, f"SELECT id, status FROM volumes WHERE status IN ({transient})")]
    problems += [f"snapshot {r.id} {r.status}" for r in _rows(
        engine, "SELECT id, status FROM volume_snapshots "
        "WHERE status IN ('creating', 'deleting')")]
    problems += [f"attachment {r.id} of volume {r.volume_id} {r.attach_status}" for r in _rows(
        engine, "SELECT id, volume_id, attach_status FROM volume_attachments "
        "WHERE attach_status IN ('attaching', 'detaching')")]
    problems += [f"server {r.instance_uuid}: mapping of volume {r.volume_id} {r.status}"
                 for r in _rows(engine, "SELECT instance_uuid, volume_id, status FROM "
                                "block_device_mappings WHERE status IN ('attaching', "
                                "'detaching')")]
    return problems


def claim_problems(engine: sa.Engine) -> list[str]:
    """Claims equal allocations: each compute host's counters are the sum of its claims, each
    claim belongs to a live server on that host, each ACTIVE server holds one; each volume
    pool's claim is what the live volumes on it hold, and deleted volumes hold nothing."""
    problems = []
    servers = {r.uuid: r for r in _rows(
        engine, "SELECT uuid, host, vm_state FROM instances WHERE vm_state <> 'deleted'")}
    claims = {r.instance_uuid: r for r in _rows(
        engine, "SELECT instance_uuid, host, vcpus, memory_mb FROM allocations")}
    for uuid, claim in claims.items():
        server = servers.get(uuid)
        if server is None or server.host != claim.host:
            problems.append(f"claim of server {uuid} on {claim.host}, server is "
                            f"{tuple(server) if server else 'deleted or unknown'}")
    for uuid, server in servers.items():
        if server.vm_state == "active" and uuid not in claims:
            problems.append(f"ACTIVE server {uuid} on {server.host} holds no claim")
    sums = {r.host: r for r in _rows(
        engine, "SELECT host, count(*) AS n, sum(vcpus) AS vcpus, sum(memory_mb) AS mem "
        "FROM allocations GROUP BY host")}
    for node in _rows(engine, "SELECT host, alloc_vcpus, alloc_memory_mb, alloc_instances "
                      "FROM compute_nodes"):
        held = sums.get(node.host)
        expected = (int(held.n), int(held.vcpus), int(held.mem)) if held else (0, 0, 0)
        counted = (node.alloc_instances, node.alloc_vcpus, node.alloc_memory_mb)
        if counted != expected:
            problems.append(f"host {node.host}: counters (instances, vcpus, MiB) {counted} "
                            f"!= its claims {expected}")
    held_gb = {(r.host, r.pool): int(r.gb) for r in _rows(
        engine, "SELECT host, pool, sum(allocated_gb) AS gb FROM volumes "
        "WHERE status <> 'deleted' AND host IS NOT NULL GROUP BY host, pool")}
    for pool in _rows(engine, "SELECT host, pool_name, allocated_capacity_gb FROM volume_pools"):
        expected_gb = held_gb.pop((pool.host, pool.pool_name), 0)
        if pool.allocated_capacity_gb != expected_gb:
            problems.append(f"pool {pool.host}#{pool.pool_name}: claimed "
                            f"{pool.allocated_capacity_gb} GiB != held by its volumes "
                            f"{expected_gb} GiB")
    problems += [f"volumes on {host}#{pool} hold {gb} GiB of no pool"
                 for (host, pool), gb in held_gb.items() if gb]
    problems += [f"deleted volume {r.id} still holds {r.allocated_gb} GiB" for r in _rows(
        engine, "SELECT id, allocated_gb FROM volumes WHERE status = 'deleted' "
        "AND allocated_gb <> 0")]
    return problems


def duplicate_problems(engine: sa.Engine) -> list[str]:
    """No IP address twice in a subnet (nor on a port of another network), no MAC address
    twice, no segment twice, no segment allocation without its segment or the reverse."""
    problems = ip_problems(engine)
    problems += [f"MAC {r.mac_address} on {r.n} ports" for r in _rows(
        engine, "SELECT mac_address, count(*) AS n FROM ports GROUP BY mac_address "
        "HAVING count(*) > 1")]
    problems += [f"segment {r.network_type}:{r.physical_network}:{r.segmentation_id} of "
                 f"{r.n} networks" for r in _rows(
                     engine, "SELECT network_type, physical_network, segmentation_id, "
                     "count(*) AS n FROM network_segments WHERE segmentation_id IS NOT NULL "
                     "GROUP BY network_type, physical_network, segmentation_id "
                     "HAVING count(*) > 1")]
    allocated = {(r.network_type, r.physical_network or "", r.segmentation_id) for r in _rows(
        engine, "SELECT network_type, physical_network, segmentation_id "
        "FROM ml2_segment_allocations")}
    used = {(r.network_type, r.physical_network or "", r.segmentation_id) for r in _rows(
        engine, "SELECT s.network_type, s.physical_network, s.segmentation_id FROM "
        "network_segments s JOIN networks n ON n.id = s.network_id "
        "WHERE s.segmentation_id IS NOT NULL AND s.network_type IN ('vxlan', 'vlan')")}
    problems += [f"segment {s} allocated but no network has it" for s in sorted(allocated - used)]
    problems += [f"segment {s} of a network but not allocated" for s in sorted(used - allocated)]
    return problems


def fault_problems(engine: sa.Engine, words: tuple[str, ...]) -> list[str]:
    """Every server and volume in ERROR has a fault, and its latest fault names the cause by
    one of ``words`` (e.g. the backend that went away)."""
    problems = []
    for kind, sql in (
        ("server", "SELECT i.uuid AS id, (SELECT f.message FROM instance_faults f WHERE "
                   "f.instance_uuid = i.uuid ORDER BY f.id DESC LIMIT 1) AS message "
                   "FROM instances i WHERE i.vm_state = 'error'"),
        ("volume", "SELECT v.id AS id, (SELECT f.message FROM volume_faults f WHERE "
                   "f.resource_id = v.id ORDER BY f.id DESC LIMIT 1) AS message "
                   "FROM volumes v WHERE v.status LIKE 'error%'"),
    ):
        for row in _rows(engine, sql):
            if not row.message:
                problems.append(f"{kind} {row.id} in error without a fault")
            elif not any(word.lower() in row.message.lower() for word in words):
                problems.append(f"{kind} {row.id}: fault names none of {words}: "
                                f"{row.message[:300]!r}")
    return problems
