"""Subnets' dns_nameservers and host_routes (Neutron's attributes): validation, ordering,
whole-list replacement on update, the [network] limits."""

from __future__ import annotations

import pytest

from stackcore import exception

ROUTE = {"destination": "192.168.50.0/24", "nexthop": "10.0.0.254"}


def test_create_keeps_order_and_update_replaces_whole_lists(net_cloud) -> None:
    cloud = net_cloud()
    net = cloud.network.create_network("n")
    sub = cloud.network.create_subnet(net.id, "10.0.0.0/24",
                                      dns_nameservers=["10.0.0.3", "8.8.8.8", "1.1.1.1"],
                                      host_routes=[ROUTE])
    assert sub.dns_nameservers == ("10.0.0.3", "8.8.8.8", "1.1.1.1")
    assert sub.host_routes == (ROUTE,)
    assert cloud.network.get_subnet(sub.id) == sub
    new_route = {"destination": "172.16.0.0/12", "nexthop": "10.0.0.253"}
    updated = cloud.network.update_subnet(sub.id, dns_nameservers=["9.9.9.9"],
                                          host_routes=[new_route])
    assert (updated.dns_nameservers, updated.host_routes) == (("9.9.9.9",), (new_route,))
    cleared = cloud.network.update_subnet(sub.id, dns_nameservers=[])
    assert (cleared.dns_nameservers, cleared.host_routes) == ((), (new_route,))
    six = cloud.network.create_subnet(net.id, "fd00::/64", dns_nameservers=["fd00::53"],
                                      host_routes=[{"destination": "fd01::/64",
                                                    "nexthop": "fd00::1"}])
    assert six.dns_nameservers == ("fd00::53",)
    assert cloud.network.create_subnet(net.id, "10.1.0.0/24").dns_nameservers == ()


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"dns_nameservers": ["10.0.0.3", "10.0.0.3"]}, "dns_nameservers[1]"),
    ({"dns_nameservers": ["fd00::53"]}, "dns_nameservers[0]"),
    ({"dns_nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3"]}, "dns_nameservers"),
    ({"dns_nameservers": ["not-an-ip"]}, "dns_nameservers"),
    ({"dns_nameservers": ["1.1.1.1;reboot"]}, "dns_nameservers"),
    ({"host_routes": [{"destination": "192.168.50.1/24", "nexthop": "10.0.0.254"}]},
     "host_routes[0].destination"),
    ({"host_routes": [{"destination": "fd01::/64", "nexthop": "10.0.0.254"}]},
     "host_routes[0].destination"),
    ({"host_routes": [{"destination": "192.168.50.0/24", "nexthop": "fd00::1"}]},
     "host_routes[0].nexthop"),
    ({"host_routes": [ROUTE, {"destination": "192.168.50.0/24", "nexthop": "10.0.0.1"}]},
     "host_routes[1].destination"),
    ({"host_routes": [ROUTE, ROUTE, ROUTE]}, "host_routes"),
    ({"host_routes": [{"destination": "192.168.50.0/24"}]}, "host_routes"),
])
def test_bad_dns_and_routes_name_the_culprit_and_persist_nothing(net_cloud, kwargs,
                                                                  field) -> None:
    cloud = net_cloud(network={"max_dns_nameservers": 2, "max_subnet_host_routes": 2})
    net = cloud.network.create_network("n")
    with pytest.raises(exception.Invalid) as err:
        cloud.network.create_subnet(net.id, "10.0.0.0/24", **kwargs)
    assert err.value.field.startswith(field), (err.value.field, field)
    assert cloud.network.list_subnets() == []
    sub = cloud.network.create_subnet(net.id, "10.0.0.0/24", dns_nameservers=["10.0.0.2"],
                                      host_routes=[ROUTE])
    with pytest.raises(exception.Invalid) as err:
        cloud.network.update_subnet(sub.id, **kwargs)
    assert err.value.field.startswith(field), (err.value.field, field)
    assert cloud.network.get_subnet(sub.id) == sub
