"""Security groups: a rule change into the data plane, the agents' way vs the raw tool's.

Ports are in groups (``--ports`` in ``--groups``, ``--rules`` per group, each a TCP port
ingress rule from a /24); one rule is added to one group, and the time until the data plane
has it is measured two ways in the same run, on the same table:

* OVS (a bridge of an ovs-vswitchd instance of its own, userspace datapath): the agent's
  way - :func:`~stackcore_drivers.network.ovs.firewall.firewall_flows` for every port, then
  the flow mods that differ from its last pass in one bundle (``change_flows``) - against raw
  ``ovs-ofctl add-flows`` of exactly the new flows (also shown: the agent's periodic whole
  ``replace-flows``, which dumps and compares the table);
* Linux bridge (a network namespace of its own): the agent's way - the ruleset built for every
  port, then the changed chains flushed and refilled in one ``nft -f`` - against raw
  ``nft -f`` of one ``insert rule`` per member port's ingress chain.

Also the full resync (the whole firewall written to an empty table / namespace). Goals (issue
15): a rule change < 2x the raw tool and < 1 s. Ports need not exist for either tool: flows
and nft rules name port numbers and device names.

    python benchmarks/security_groups.py [--ports 1000] [--groups 10] [--rules 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _security(rules: int, group: int, extra: bool) -> Any:
    from stackcore_drivers.network.host_state import SecurityRule
    found = [SecurityRule("egress", "IPv4", None, None, None, None)]
    count = rules + (1 if extra else 0)
    for r in range(count):
        found.append(SecurityRule("ingress", "IPv4", 6, 1000 + r, 1000 + r,
                                  f"10.{group}.{r % 256}.0/24"))
    return found


def _ports(args: argparse.Namespace, changed: bool) -> list[tuple[int, str, str, Any]]:
    """(ofport, MAC, IP, PortSecurity) per port; ``changed``: group 0 has one rule more."""
    from stackcore_drivers.network.host_state import PortSecurity
    ports = []
    for n in range(args.ports):
        group = n % args.groups
        mac = f"fa:16:3e:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
        ip = f"10.200.{n >> 8 & 255}.{n & 255}"
        rules = tuple(_security(args.rules, group, changed and group == 0))
        ports.append((n + 10, mac, ip, PortSecurity(True, ((ip, mac),), rules)))
    return ports


def _ovs(args: argparse.Namespace) -> dict[str, float]:
    from stackcore_drivers.network.ovs import firewall
    from stackcore_drivers.network.ovs.openflow import OfctlBridge
    instance = f"sc-sgbench-{os.getpid()}"
    out = subprocess.run(["bash", str(REPO / "tools/backends/ovs-instance.sh"), instance],
                         capture_output=True, text=True, check=True, timeout=120)
    sock = out.stdout.strip().splitlines()[-1]
    rundir = str(Path(sock).parent)
    vsctl = ["ovs-vsctl", f"--db=unix:{sock}"]
    subprocess.run([*vsctl, "--may-exist", "add-br", "br-sgb", "--", "set", "Bridge",
                    "br-sgb", "datapath_type=netdev", "fail_mode=secure"], check=True,
                   timeout=60)
    bridge = OfctlBridge("br-sgb", rundir, timeout=600)

    def flows(changed: bool) -> list[str]:
        return firewall.firewall_flows([firewall.FirewallPort(p, mac, 1, sec)
                                        for p, mac, _, sec in _ports(args, changed)])

    try:
        before, after = flows(False), flows(True)
        started = time.perf_counter()
        bridge.replace_flows(before)
        resync = time.perf_counter() - started
        started = time.perf_counter()
        bridge.change_flows(before, flows(True))  # the agent's pass: only the differences
        agent = time.perf_counter() - started
        started = time.perf_counter()
        bridge.replace_flows(flows(True))  # its periodic whole replacement (nothing to do)
        replace = time.perf_counter() - started
        bridge.replace_flows(before)
        new = sorted(set(after) - set(before))
        started = time.perf_counter()
        bridge._run(["add-flows", bridge.target, "-"],  # noqa: SLF001 - the raw tool
                    stdin="".join(f"{f}\n" for f in new))
        raw = time.perf_counter() - started
        return {"flows": float(len(after)), "changed_flows": float(len(new)),
                "resync_s": resync, "agent_s": agent, "raw_s": raw, "replace_s": replace}
    finally:
        subprocess.run([*vsctl, "--if-exists", "del-br", "br-sgb"], check=False, timeout=60)
        subprocess.run(["bash", str(REPO / "tools/backends/ovs-instance.sh"), "--stop",
                        instance], capture_output=True, check=False, timeout=120)
        if Path(sock).parents[1].name == f"ovs-{instance}":  # its state directory
            shutil.rmtree(Path(sock).parents[1], ignore_errors=True)


def _nft(args: argparse.Namespace) -> dict[str, float]:
    from stackcore_drivers.network.linuxbridge import firewall
    ns = f"sc-sgbench-{uuid.uuid4().hex[:4]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        nft = firewall.NftFirewall(ns, timeout=600)

        def taps(changed: bool) -> list[Any]:
            return [firewall.FilteredTap(f"tap{p:011d}", "brqbench", mac, sec)
                    for p, mac, _, sec in _ports(args, changed)]

        before = taps(False)
        started = time.perf_counter()
        nft.apply(before)
        resync = time.perf_counter() - started
        started = time.perf_counter()
        nft.apply(taps(True))
        agent = time.perf_counter() - started
        nft.apply(before)
        # raw: one rule inserted into each member's ingress chain (chains are numbered in
        # tap order, as the ruleset numbers them)
        order = sorted(before, key=lambda t: t.tap)
        new_rule = _security(args.rules, 0, True)[-1]
        match = firewall.rule_expression(new_rule)
        lines = [f"insert rule inet {firewall.TABLE} ingress_{i} {match} accept"
                 for i, tap in enumerate(order, 1) if (int(tap.tap[3:]) - 10) % args.groups == 0]
        with tempfile.NamedTemporaryFile("w", suffix=".nft") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            started = time.perf_counter()
            nft.run(["-f", handle.name])
            raw = time.perf_counter() - started
        return {"changed_rules": float(len(lines)), "resync_s": resync, "agent_s": agent,
                "raw_s": raw}
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--rules", type=int, default=10, help="rules per group")
    args = parser.parse_args(argv if argv is not None else [])
    ovs, nft = _ovs(args), _nft(args)
    worst = max(ovs["agent_s"] / ovs["raw_s"], nft["agent_s"] / nft["raw_s"])
    met = worst < 2 and max(ovs["agent_s"], nft["agent_s"]) < 1
    for name, found in (("ovs", ovs), ("nft", nft)):
        print(f"security groups {name}: {args.ports} ports, {args.groups} groups, "
              f"{args.rules} rules/group | rule change: agent {found['agent_s']:.3f} s, raw "
              f"{found['raw_s']:.3f} s ({found['agent_s'] / found['raw_s']:.1f}x) | full "
              f"resync {found['resync_s']:.3f} s"
              + (f" | periodic replace-flows {found['replace_s']:.3f} s"
                 if "replace_s" in found else ""))
    return {"ovs": ovs, "nft": nft,
            "summary": {"text": f"rule change: OVS {ovs['agent_s']:.2f} s "
                                f"({ovs['agent_s'] / ovs['raw_s']:.1f}x raw ovs-ofctl), nft "
                                f"{nft['agent_s']:.2f} s ({nft['agent_s'] / nft['raw_s']:.1f}x "
                                "raw nft)",
                        "goal": "< 2x the raw tool and < 1 s per rule change", "met": met}}


if __name__ == "__main__":
    main(sys.argv[1:])
