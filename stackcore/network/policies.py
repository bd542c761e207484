"""The network family's policy rules (defaults; an operator's policy file may override any).

Networks, subnets and ports belong to a project; a ``shared`` network's subnets are readable and
its ports creatable by every project (Neutron's rule); provider attributes, port binding
(host, profile), agents, type usage and driver faults are ``admin_only``.
"""

from __future__ import annotations

from typing import Any

from stackcore.project import policy as p

_RULES = [
    ("network:create", p.ADMIN_OR_OWNER, "Create a network.", "create_network"),
    ("network:create:provider", p.ADMIN_ONLY,
     "Create a network with provider attributes (type, physical network, segment id).",
     "create_network"),
    ("network:create:shared", p.ADMIN_ONLY, "Create a network shared by every project.",
     "create_network"),
    ("network:create:external", p.ADMIN_ONLY, "Create an external (router:external) network.",
     "create_network"),
    ("network:get", p.ADMIN_OR_OWNER + " or True:%(shared)s",
     "Read a network (shared ones: everyone).", "get_network"),
    ("network:get:provider", p.ADMIN_ONLY, "See a network's segments.", "list_segments"),
    ("network:list", p.ANY, "List one's networks and the shared ones.", "list_networks"),
    ("network:list:all_projects", p.ADMIN_ONLY, "List every project's networks.",
     "list_networks"),
    ("network:update", p.ADMIN_OR_OWNER, "Update a network.", "update_network"),
    ("network:delete", p.ADMIN_OR_OWNER, "Delete a network.", "delete_network"),
    ("network:subnet:create", p.ADMIN_OR_OWNER, "Create a subnet on one's network.",
     "create_subnet"),
    ("network:subnet:get", p.ADMIN_OR_OWNER, "Read a subnet.", "get_subnet"),
    ("network:subnet:list", p.ANY, "List one's subnets and those of shared networks.",
     "list_subnets"),
    ("network:subnet:list:all_projects", p.ADMIN_ONLY, "List every project's subnets.",
     "list_subnets"),
    ("network:subnet:update", p.ADMIN_OR_OWNER, "Update a subnet.", "update_subnet"),
    ("network:subnet:delete", p.ADMIN_OR_OWNER, "Delete a subnet.", "delete_subnet"),
    ("network:port:create", p.ADMIN_OR_OWNER, "Create a port.", "create_port"),
    ("network:port:create:binding", p.ADMIN_ONLY,
     "Bind a port to a host or give it a binding profile.", "create_port"),
    ("network:port:create:mac_address", p.ADMIN_OR_OWNER, "Choose a port's MAC address.",
     "create_port"),
    ("network:port:get", p.ADMIN_OR_OWNER, "Read a port.", "get_port"),
    ("network:port:list", p.ANY, "List one's ports.", "list_ports"),
    ("network:port:list:all_projects", p.ADMIN_ONLY, "List every project's ports.",
     "list_ports"),
    ("network:port:update", p.ADMIN_OR_OWNER, "Update a port.", "update_port"),
    ("network:port:update:binding", p.ADMIN_ONLY, "Change a port's binding.", "update_port"),
    ("network:port:delete", p.ADMIN_OR_OWNER, "Delete a port.", "delete_port"),
    ("network:security_group:create", p.ADMIN_OR_OWNER, "Create a security group.",
     "create_security_group"),
    ("network:security_group:get", p.ADMIN_OR_OWNER, "Read a security group.",
     "get_security_group"),
    ("network:security_group:list", p.ANY, "List one's security groups.",
     "list_security_groups"),
    ("network:security_group:list:all_projects", p.ADMIN_ONLY,
     "List every project's security groups.", "list_security_groups"),
    ("network:security_group:update", p.ADMIN_OR_OWNER, "Rename a security group.",
     "update_security_group"),
    ("network:security_group:delete", p.ADMIN_OR_OWNER, "Delete a security group.",
     "delete_security_group"),
    ("network:security_group_rule:create", p.ADMIN_OR_OWNER,
     "Add a rule to a security group.", "create_security_group_rule"),
    ("network:security_group_rule:get", p.ADMIN_OR_OWNER, "Read a security group rule.",
     "get_security_group_rule"),
    ("network:security_group_rule:list", p.ANY, "List one's security group rules.",
     "list_security_group_rules"),
    ("network:security_group_rule:delete", p.ADMIN_OR_OWNER,
     "Delete a security group rule.", "delete_security_group_rule"),
    ("network:agent:list", p.ADMIN_ONLY, "List L2 agents.", "list_agents"),
    ("network:fault:list", p.ADMIN_ONLY, "List mechanism-driver faults.", "list_faults"),
    ("network:type_usage", p.ADMIN_ONLY, "Read segment allocation usage.", "type_usage"),
    ("network:instance_ports", p.ADMIN_ONLY,
     "Allocate, describe and release a server's ports (the compute side).",
     "allocate_ports_for_instance"),
]


def list_rules() -> list[Any]:
    return [p.rule(name, check, description, f"cloud.network.{method}")
            for name, check, description, method in _RULES]
