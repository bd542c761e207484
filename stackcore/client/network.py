"""``network``, ``subnet`` and ``port`` create/list/show/delete."""

from __future__ import annotations

import argparse
from typing import Any

from stackcore import exception
from stackcore.client import format as fmt
from stackcore.client.base import CloudCommand, CloudLister, CloudShowOne

NETWORK_COLUMNS = ("id", "name", "status", "mtu", "shared")
SUBNET_COLUMNS = ("id", "name", "network_id", "cidr", "gateway_ip")
PORT_COLUMNS = ("id", "name", "network_id", "mac_address", "fixed_ips", "status", "host")


def _id_parser(parser: argparse.ArgumentParser, kind: str, many: bool) -> None:
    parser.add_argument(kind, nargs="+" if many else None, help=f"{kind} id")


class CreateNetwork(CloudShowOne):
    """Create a network."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        parser.add_argument("--network-type", help="flat, vlan, vxlan... (admin)")
        parser.add_argument("--physical-network")
        parser.add_argument("--segmentation-id", type=int)
        parser.add_argument("--shared", action="store_true")
        parser.add_argument("--external", action="store_true")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        network = self.cloud.network.create_network(
            args.name, network_type=args.network_type, physical_network=args.physical_network,
            segmentation_id=args.segmentation_id, shared=args.shared,
            router_external=args.external)
        return fmt.show(network)


class ListNetwork(CloudLister):
    """List networks."""

    def take_action(self, args: argparse.Namespace) -> Any:
        networks = self.cloud.network.list_networks()
        return NETWORK_COLUMNS, [fmt.row(n, NETWORK_COLUMNS) for n in networks]


class ShowNetwork(CloudShowOne):
    """Show a network."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_parser(parser, "network", many=False)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.network.get_network(args.network))


class DeleteNetwork(CloudCommand):
    """Delete networks."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_parser(parser, "network", many=True)
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        for network in args.network:
            self.cloud.network.delete_network(network)


def _host_route(value: str) -> dict[str, str]:
    """OpenStackClient's ``--host-route destination=CIDR,gateway=IP`` as the API's
    ``{"destination", "nexthop"}`` (the values are validated by the API)."""
    parts = dict(item.partition("=")[::2] for item in value.split(","))
    if set(parts) != {"destination", "gateway"} or value.count(",") != 1:
        raise exception.Invalid("--host-route", f"{value!r} must be "
                                "destination=CIDR,gateway=IP", value)
    return {"destination": parts["destination"], "nexthop": parts["gateway"]}


def _dns_and_route_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dns-nameserver", action="append", default=[], metavar="ADDRESS",
                        dest="dns_nameservers", help="a DNS server DHCP hands out (repeatable, "
                        "in order)")
    parser.add_argument("--host-route", action="append", default=[],
                        metavar="destination=CIDR,gateway=IP", dest="host_routes",
                        help="a route DHCP hands out (repeatable)")


class CreateSubnet(CloudShowOne):
    """Create a subnet of a network."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        parser.add_argument("--network", required=True, metavar="NETWORK_ID")
        parser.add_argument("--subnet-range", required=True, metavar="CIDR")
        parser.add_argument("--gateway", default="auto",
                            help="an address, 'auto' (the first usable one) or 'none'")
        parser.add_argument("--no-dhcp", action="store_true")
        _dns_and_route_options(parser)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        routes = [_host_route(r) for r in args.host_routes]
        subnet = self.cloud.network.create_subnet(
            args.network, args.subnet_range, name=args.name,
            gateway_ip=None if args.gateway == "none" else args.gateway,
            enable_dhcp=not args.no_dhcp, dns_nameservers=args.dns_nameservers,
            host_routes=routes)
        return fmt.show(subnet)


class SetSubnet(CloudShowOne):
    """Change a subnet. As OpenStackClient's ``subnet set``: ``--dns-nameserver`` and
    ``--host-route`` add to the subnet's lists; ``--no-dns-nameservers`` /
    ``--no-host-route`` clear them first."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_parser(parser, "subnet", many=False)
        parser.add_argument("--name")
        dhcp = parser.add_mutually_exclusive_group()
        dhcp.add_argument("--dhcp", action="store_true", default=None, dest="dhcp")
        dhcp.add_argument("--no-dhcp", action="store_false", dest="dhcp")
        _dns_and_route_options(parser)
        parser.add_argument("--no-dns-nameservers", action="store_true")
        parser.add_argument("--no-host-route", action="store_true")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        routes = [_host_route(r) for r in args.host_routes]
        changes: dict[str, Any] = {}
        if args.name is not None:
            changes["name"] = args.name
        if args.dhcp is not None:
            changes["enable_dhcp"] = args.dhcp
        current = self.cloud.network.get_subnet(args.subnet)
        if args.dns_nameservers or args.no_dns_nameservers:
            kept = [] if args.no_dns_nameservers else list(current.dns_nameservers)
            changes["dns_nameservers"] = kept + args.dns_nameservers
        if routes or args.no_host_route:
            kept_routes = [] if args.no_host_route else [dict(r) for r in current.host_routes]
            changes["host_routes"] = kept_routes + routes
        return fmt.show(self.cloud.network.update_subnet(args.subnet, **changes))


class ListSubnet(CloudLister):
    """List subnets."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--network", metavar="NETWORK_ID")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        subnets = self.cloud.network.list_subnets(args.network)
        return SUBNET_COLUMNS, [fmt.row(s, SUBNET_COLUMNS) for s in subnets]


class ShowSubnet(CloudShowOne):
    """Show a subnet."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_parser(parser, "subnet", many=False)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.network.get_subnet(args.subnet))


class DeleteSubnet(CloudCommand):
    """Delete subnets."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_parser(parser, "subnet", many=True)
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        for subnet in args.subnet:
            self.cloud.network.delete_subnet(subnet)


class CreatePort(CloudShowOne):
    """Create a port on a network."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        parser.add_argument("--network", required=True, metavar="NETWORK_ID")
        parser.add_argument("--mac-address")
        parser.add_argument("--fixed-ip", action="append", default=[], metavar="ADDRESS",
                            help="an address from one of the network's subnets (repeatable)")
        parser.add_argument("--host", default="", help="bind the port on this host")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        port = self.cloud.network.create_port(
            args.network, name=args.name, mac_address=args.mac_address,
            fixed_ips=[{"ip_address": a} for a in args.fixed_ip] or None, host=args.host)
        return fmt.show(port)


class ListPort(CloudLister):
    """List ports."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        parser.add_argument("--network", metavar="NETWORK_ID")
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        ports = self.cloud.network.list_ports(network_id=args.network)
        return PORT_COLUMNS, [fmt.row(p, PORT_COLUMNS) for p in ports]


class ShowPort(CloudShowOne):
    """Show a port."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_parser(parser, "port", many=False)
        return parser

    def take_action(self, args: argparse.Namespace) -> Any:
        return fmt.show(self.cloud.network.get_port(args.port))


class DeletePort(CloudCommand):
    """Delete ports."""

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        _id_parser(parser, "port", many=True)
        return parser

    def take_action(self, args: argparse.Namespace) -> None:
        for port in args.port:
            self.cloud.network.delete_port(port)
