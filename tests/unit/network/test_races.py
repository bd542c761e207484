"""Two API calls racing on one network (threads of one process, embedded default and
PostgreSQL): each pair ends as if one had run entirely before the other."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from stackcore import exception

ROUNDS = 120


def _race(first: Any, second: Any) -> tuple[Any, Any]:
    """Run both at once (released together by a barrier); each one's result or exception."""
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def run(index: int, fn: Any) -> None:
        barrier.wait()
        try:
            results[index] = fn()
        except Exception as err:
            results[index] = err

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate((first,
                                                                                  second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a racing call did not return within 60 s"
    return results[0], results[1]


def test_deleting_a_network_while_a_port_is_created_on_it_lets_one_win_cleanly(
    net_cloud,
) -> None:
    cloud = net_cloud()
    net_api = cloud.network
    outcomes = {"port won": 0, "delete won": 0}
    for round_no in range(ROUNDS):
        net = net_api.create_network(f"r{round_no}")
        v4 = net_api.create_subnet(net.id, "10.0.0.0/24")
        v6 = net_api.create_subnet(net.id, "fd00::/64")
        port, deleted = _race(lambda: net_api.create_port(net.id),
                              lambda: net_api.delete_network(net.id))
        where = f"round {round_no}: create_port -> {port!r}, delete_network -> {deleted!r}"
        if isinstance(deleted, exception.Conflict):
            assert not isinstance(port, Exception), where
            assert {ip.subnet_id for ip in port.fixed_ips} == {v4.id, v6.id}, where
            assert {s.id for s in net_api.list_subnets(net.id)} == {v4.id, v6.id}, where
            outcomes["port won"] += 1
            net_api.delete_port(port.id)
            net_api.delete_network(net.id)
        else:
            assert deleted is None, where
            assert isinstance(port, exception.NotFound), where
            with pytest.raises(exception.NotFound):
                net_api.get_network(net.id)
            outcomes["delete won"] += 1
        assert net_api.list_ports() == [], where
        assert net_api.list_subnets() == [], where
    print(f"network delete vs port create: {outcomes} in {ROUNDS} rounds")
