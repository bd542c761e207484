"""Database invariants the concurrency tests check after every round (read with plain SQL, so
they judge what is stored, not what the API believes)."""

from __future__ import annotations

import collections
import itertools

import sqlalchemy as sa


def segment_problems(engine: sa.Engine, network_type: str, first: int, last: int
                     ) -> list[str]:
    """Every ID of ``first..last`` is free xor allocated; free ranges are disjoint, lie in the
    configured range and are never empty; allocations are exactly the segments of existing
    networks (no leak, no orphan, no ID twice)."""
    with engine.connect() as conn:
        allocated = [r[0] for r in conn.execute(sa.text(
            "SELECT segmentation_id FROM ml2_segment_allocations WHERE network_type = :t"),
            {"t": network_type})]
        free = [tuple(r) for r in conn.execute(sa.text(
            "SELECT first, last FROM ml2_segment_ranges WHERE network_type = :t "
            "ORDER BY first, last"), {"t": network_type})]
        used = [r[0] for r in conn.execute(sa.text(
            "SELECT s.segmentation_id FROM network_segments s JOIN networks n "
            "ON n.id = s.network_id WHERE s.network_type = :t"), {"t": network_type})]
    problems = []
    for f, la in free:
        if f > la:
            problems.append(f"empty free range {f}..{la}")
        if f < first or la > last:
            problems.append(f"free range {f}..{la} outside {first}..{last}")
    for (f1, l1), (f2, l2) in itertools.pairwise(free):
        if f2 <= l1:
            problems.append(f"free ranges {f1}..{l1} and {f2}..{l2} overlap")
    free_ids = collections.Counter(i for f, la in free for i in range(f, la + 1))
    twice_free = sorted(i for i, n in free_ids.items() if n > 1)
    if twice_free:
        problems.append(f"IDs free twice: {twice_free}")
    both = sorted(set(free_ids) & set(allocated))
    if both:
        problems.append(f"IDs both free and allocated: {both}")
    lost = sorted(set(range(first, last + 1)) - set(free_ids) - set(allocated))
    if lost:
        problems.append(f"IDs neither free nor allocated: {lost}")
    twice_used = sorted(i for i, n in collections.Counter(used).items() if n > 1)
    if twice_used:
        problems.append(f"IDs of two networks at once: {twice_used}")
    if sorted(allocated) != sorted(used):
        problems.append(f"allocations {sorted(set(allocated) - set(used))} have no network, "
                        f"networks use {sorted(set(used) - set(allocated))} unallocated")
    return problems


def ip_problems(engine: sa.Engine) -> list[str]:
    """No address twice in a subnet; every allocation's port exists on the subnet's network."""
    with engine.connect() as conn:
        twice = conn.execute(sa.text(
            "SELECT subnet_id, ip_address, count(*) FROM ip_allocations "
            "GROUP BY subnet_id, ip_address HAVING count(*) > 1")).all()
        foreign = conn.execute(sa.text(
            "SELECT a.ip_address FROM ip_allocations a JOIN ports p ON p.id = a.port_id "
            "JOIN subnets s ON s.id = a.subnet_id WHERE p.network_id <> s.network_id")).all()
    problems = [f"address {ip} of subnet {subnet} held {n} times" for subnet, ip, n in twice]
    problems += [f"address {r[0]} allocated to a port of another network" for r in foreign]
    return problems
