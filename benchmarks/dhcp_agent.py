"""DHCP agent with dnsmasq: 1,000 ports on one network - full sync, then per-port changes.

An embedded ML2 server (SQLite, in-process RPC, the fake mechanism driver) and the real DHCP
agent with the real ``dnsmasq`` driver in a real ``qdhcp-`` namespace (the DHCP port's veth
end sits in a scratch namespace standing for the Linux bridge datapath: no L2 agent is
needed to time DHCP). Measured:

* **sync**: ``start()`` of an agent with nothing on the host until dnsmasq serves every
  port's entry (the full resync a restarted agent does, namespace and dnsmasq start included);
* **per-port**: ``create_port`` returns -> the port's entry is in the hosts file dnsmasq was
  sent SIGHUP for (the server's notification, one ``get_network_info`` of every port, the
  file rewritten); the dnsmasq pid must not change (no restart).

Anchor, same run: the raw tools doing the same - ``dnsmasq`` started by hand on the
same 1,000-line hosts file (until its pid file appears), and one line appended to a hosts file
plus ``kill -HUP``. Goal (issue 15): < 1 s per port change, no dnsmasq restart.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _until(check: Any, timeout: float, what: str) -> float:
    began = time.perf_counter()
    while not check():
        if time.perf_counter() - began > timeout:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.001)
    return time.perf_counter() - began


def _raw(work: Path, hosts_text: str, namespace: str, updates: int) -> tuple[float, float]:
    """dnsmasq by hand: start on the hosts file, then append + SIGHUP per update."""
    hosts, pid_file = work / "raw.hosts", work / "raw.pid"
    hosts.write_text(hosts_text)
    conf = work / "raw.conf"
    conf.write_text(f"no-hosts\nno-resolv\nport=0\nbind-interfaces\ninterface=rawdev0\n"
                    f"user=root\npid-file={pid_file}\ndhcp-hostsfile={hosts}\nleasefile-ro\n"
                    "dhcp-range=10.90.0.0,static,255.255.248.0,86400s\n")
    _ip("-n", namespace, "link", "add", "rawdev0", "type", "veth", "peer", "name", "rawdev1")
    _ip("-n", namespace, "addr", "add", "10.90.7.250/21", "dev", "rawdev0")
    _ip("-n", namespace, "link", "set", "rawdev0", "up")
    began = time.perf_counter()
    subprocess.run(["ip", "netns", "exec", namespace, "dnsmasq", f"--conf-file={conf}"],
                   check=True, capture_output=True, timeout=30)
    _until(lambda: pid_file.exists() and pid_file.read_text().strip(), 10, "raw pid file")
    start = time.perf_counter() - began
    pid = int(pid_file.read_text())
    times = []
    for i in range(updates):
        began = time.perf_counter()
        with open(hosts, "a") as out:
            out.write(f"fa:16:3f:00:10:{i:02x},10.90.6.{i + 1},host-raw-{i}\n")
        os.kill(pid, signal.SIGHUP)
        times.append(time.perf_counter() - began)
    os.kill(pid, signal.SIGTERM)
    return start, statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=20)
    args = parser.parse_args(argv if argv is not None else [])
    if os.geteuid() != 0 or not shutil.which("dnsmasq"):
        raise RuntimeError("needs root (namespaces) and dnsmasq (Debian dnsmasq-base)")
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    from stackcore_drivers.network.conf import load_agent_conf
    from stackcore_drivers.network.dhcp.agent import DhcpAgent

    import stackcore

    work = Path(tempfile.mkdtemp(prefix="stackcore-bench-dhcp-"))
    datapath = f"scdhcp-bench-{uuid.uuid4().hex[:6]}"
    _ip("netns", "add", datapath)
    cloud = stackcore.Cloud(overrides={
        "DEFAULT": {"state_path": str(work / "server"), "periodic_interval": 3600},
        "ml2": {"mechanism_drivers": ["fake"]}}, services=["network"])
    agents: list[DhcpAgent] = []
    network_id = ""
    try:
        net = cloud.network
        network = net.create_network("bench")
        network_id = network.id
        net.create_subnet(network.id, "10.90.0.0/21")
        began = time.perf_counter()
        for _ in range(args.ports):
            net.create_port(network.id)
        create_rate = args.ports / (time.perf_counter() - began)

        conf = load_agent_conf(DhcpAgent.list_opts()[1:], overrides={
            "DEFAULT": {"host": "bench-host", "state_path": str(work / "agent")},
            "agent": {"report_interval": 5},
            "dhcp": {"interface_driver": "linuxbridge", "datapath_namespace": datapath,
                     "resync_interval": 3600,
                     # measures DHCP only (metadata needs the compute service's secret)
                     "enable_isolated_metadata": False}})
        agent = DhcpAgent(conf, cloud.transport)
        agents.append(agent)
        began = time.perf_counter()
        agent.start()
        _until(lambda: len(agent.driver.served_hosts(network.id)) >= args.ports + 1, 120,
               "every port served")
        sync = time.perf_counter() - began
        pid = agent.driver.server_id(network.id)

        latencies = []
        for _ in range(args.updates):
            began = time.perf_counter()
            port = net.create_port(network.id)
            mac = port.mac_address
            _until(lambda mac=mac: any(e.mac_address == mac
                                       for e in agent.driver.served_hosts(network.id)),
                   30, "the new port's entry")
            latencies.append(time.perf_counter() - began)
        restarted = agent.driver.server_id(network.id) != pid
        hosts_text = (work / "agent" / "dhcp" / "driver" / network.id / "hosts").read_text()
        raw_start, raw_update = _raw(work, hosts_text, datapath, args.updates)
    finally:
        for agent in agents:
            agent.stop()
            if network_id:
                agent.cleanup_network(network_id, release=False)
        cloud.close()
        subprocess.run(["ip", "netns", "del", datapath], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)

    median, worst = statistics.median(latencies), max(latencies)
    met = worst < 1.0 and not restarted
    print(f"dhcp_agent: {args.ports} ports created at {create_rate:.0f}/s")
    print(f"  full sync (start -> every entry served): {sync:.2f} s; raw dnsmasq start on the "
          f"same hosts file: {raw_start * 1000:.0f} ms")
    print(f"  per port change (create_port -> entry served): median "
          f"{median * 1000:.0f} ms, max {worst * 1000:.0f} ms over {args.updates}; raw "
          f"append + SIGHUP: {raw_update * 1e6:.0f} us; dnsmasq restarted: {restarted}")
    return {
        "ports": args.ports, "sync_s": sync, "raw_start_s": raw_start,
        "update_median_s": median, "update_max_s": worst, "raw_update_s": raw_update,
        "restarted": restarted,
        "summary": {
            "text": f"{args.ports} ports: sync {sync:.2f} s (raw dnsmasq start "
                    f"{raw_start:.2f} s), port change median {median * 1000:.0f} ms / max "
                    f"{worst * 1000:.0f} ms ({median / raw_update:.0f}x raw append+HUP), "
                    f"no restart: {not restarted}",
            "goal": "< 1 s per port change, no dnsmasq restart", "met": met},
    }


if __name__ == "__main__":
    import sys

    result = main(sys.argv[1:])
    sys.exit(0 if result["summary"]["met"] else 1)
