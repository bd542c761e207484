"""The agents' console scripts refuse configurations that cannot work, naming the option."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from stackcore_drivers.network import cmd


@pytest.fixture(autouse=True)
def signal_mask_restored() -> Iterator[None]:
    """Each ``main`` blocks SIGTERM/SIGINT in the calling thread (stackcore.lifecycle) before
    it reads its configuration: give the test process its mask back, or every later test (and
    every process it starts: the mask is inherited) would ignore them."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    yield
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@pytest.mark.parametrize("content,message", [
    ("", "[DEFAULT] transport_url must name the server's RPC bus"),
    ("[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n[database]\n"
     "connection = sqlite:////tmp/x.sqlite\n[ovs]\nintegration_bridge = br-integration-x\n",
     "[ovs] integration_bridge: invalid integration_bridge: 'br-integration-x' is 16 "
     "characters long; the kernel's limit for a device name is 15"),
    ("[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n[database]\n"
     "connection = sqlite:////tmp/x.sqlite\n[ovs]\ntunnel_types = vxlan\n",
     "[ovs] tunnel_types is set but [ovs] local_ip is empty"),
    ("[ovs]\ndatapath_type = dpdk\n", "[ovs] datapath_type = 'dpdk' is invalid"),
], ids=["in-process-rpc", "long-bridge", "vxlan-without-ip", "bad-choice"])
def test_ovs_agent_refuses_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      content: str, message: str) -> None:
    path = tmp_path / "agent.conf"
    path.write_text(content)
    assert cmd.ovs_agent(["--config-file", str(path)]) == 1
    assert message in capsys.readouterr().err


def test_linuxbridge_agent_refuses_a_bad_local_ip(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.conf"
    path.write_text("[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n[database]\n"
                    "connection = sqlite:////tmp/x.sqlite\n[vxlan]\nlocal_ip = 10.0.0.300\n")
    assert cmd.linuxbridge_agent(["--config-file", str(path)]) == 1
    assert "[vxlan] local_ip: '10.0.0.300' is not an IP address" in capsys.readouterr().err


@pytest.mark.parametrize("content,message", [
    ("", "[DEFAULT] transport_url must name the server's RPC bus"),
    ("[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n[dhcp]\ndhcp_driver = dnsmasqq\n",
     "dnsmasqq"),
    ("[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n[dhcp]\n"
     "interface_driver = macvtap\n", "[dhcp] interface_driver = 'macvtap' is invalid"),
    ("[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n[dnsmasq]\nlease_duration = 5\n",
     "[dnsmasq] lease_duration"),
    ("[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n",
     "[dhcp] enable_isolated_metadata is on but [dhcp] metadata_proxy_shared_secret is empty"),
    ("[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n[dhcp]\n"
     "metadata_proxy_shared_secret = s3cret\nmetadata_url = 127.0.0.1:8775\n",
     "[dhcp] metadata_url '127.0.0.1:8775' is not an http(s) URL with a host"),
], ids=["in-process-rpc", "unknown-driver", "bad-interface-driver", "short-lease",
        "metadata-without-secret", "metadata-url-without-scheme"])
def test_dhcp_agent_refuses_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       content: str, message: str) -> None:
    from stackcore_drivers.network.dhcp import cmd as dhcp_cmd

    path = tmp_path / "agent.conf"
    path.write_text(content + f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n")
    assert dhcp_cmd.main(["--config-file", str(path)]) == 1
    assert message in capsys.readouterr().err


def test_a_refused_start_leaves_the_test_process_mask_to_the_fixture() -> None:
    """The console scripts do block the stop signals in the caller (what the autouse fixture
    undoes): checked, so the fixture is known to be needed and to work."""
    from stackcore_drivers.network.dhcp import cmd as dhcp_cmd

    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert dhcp_cmd.main(["--config-file", "/nonexistent/agent.conf"]) == 1
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    assert {signal.SIGTERM, signal.SIGINT} <= blocked, blocked
    assert signal.SIGTERM not in before, f"the mask was not restored by an earlier test: {before}"


@pytest.mark.parametrize("content,message", [
    ("", "[DEFAULT] transport_url must name the server's RPC bus"),
    ("[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n[l3]\n"
     "interface_driver = macvtap\n", "[l3] interface_driver = 'macvtap' is invalid"),
    ("[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:1/\n[l3]\nresync_interval = 0.1\n",
     "[l3] resync_interval"),
], ids=["in-process-rpc", "bad-interface-driver", "short-resync"])
def test_l3_agent_refuses_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     content: str, message: str) -> None:
    from stackcore_drivers.network.l3 import cmd as l3_cmd

    path = tmp_path / "agent.conf"
    path.write_text(content + f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n")
    assert l3_cmd.main(["--config-file", str(path)]) == 1
    assert message in capsys.readouterr().err
