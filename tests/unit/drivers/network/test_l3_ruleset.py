"""The L3 agent's nftables ruleset, generated from a router's data (checked by ``nft -c``
in a scratch namespace when this machine has nft: the kernel's parser is the judge)."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from stackcore_drivers.network.l3 import ruleset

from stackcore import exception

FIPS = [{"floating_ip_address": "203.0.113.9", "fixed_ip_address": "10.0.0.5"},
        {"floating_ip_address": "203.0.113.7", "fixed_ip_address": "10.1.0.8"}]


def test_snat_floating_ips_and_inbound_filter() -> None:
    text = ruleset.build("qg-0123456789a", "203.0.113.2", True, ["10.1.0.0/24", "10.0.0.0/24"],
                         FIPS)
    lines = [line.strip() for line in text.splitlines()]
    assert lines[:3] == ["table ip stackcore-router {}", "delete table ip stackcore-router",
                         "table ip stackcore-router {"], text
    assert lines.index("ip daddr 203.0.113.7 dnat to 10.1.0.8") < lines.index(
        "ip daddr 203.0.113.9 dnat to 10.0.0.5"), text   # sorted: a stable text
    one_to_one = 'oifname "qg-0123456789a" ip saddr 10.0.0.5 snat to 203.0.113.9'
    snat = ('oifname "qg-0123456789a" ip saddr { 10.0.0.0/24, 10.1.0.0/24 } '
            "snat to 203.0.113.2")
    assert lines.index(one_to_one) < lines.index(snat), text   # 1:1 before the router's SNAT
    assert 'iifname "qg-0123456789a" ct state new ct status & dnat == 0 drop' in lines, text
    hairpin = ('iifname != "qg-0123456789a" oifname != "qg-0123456789a" '
               "ct status & dnat == dnat snat to 203.0.113.2")
    assert hairpin in lines, text


def test_hairpin_only_with_floating_ips_even_without_snat() -> None:
    assert "ct status & dnat == dnat" not in ruleset.build(
        "qg-x", "203.0.113.2", True, ["10.0.0.0/24"], []), "hairpin rule with no floating IP"
    text = ruleset.build("qg-x", "203.0.113.2", False, ["10.0.0.0/24"], FIPS[:1])
    assert ('iifname != "qg-x" oifname != "qg-x" ct status & dnat == dnat snat to 203.0.113.2'
            in text), text


def test_without_snat_only_floating_ips() -> None:
    text = ruleset.build("qg-x", "203.0.113.2", False, ["10.0.0.0/24"], FIPS[:1])
    assert "snat to 203.0.113.9" in text, text
    assert 'ip saddr { 10.0.0.0/24 } snat' not in text, text


def test_without_gateway_an_empty_table() -> None:
    text = ruleset.build(None, None, True, ["10.0.0.0/24"], FIPS)
    assert "dnat" not in text and "snat" not in text and "drop" not in text, text
    assert "chain prerouting" in text and "chain postrouting" in text, text


@pytest.mark.parametrize("bad", [
    {"floating_ip_address": "203.0.113.9; flush ruleset", "fixed_ip_address": "10.0.0.5"},
    {"floating_ip_address": "2001:db8::1", "fixed_ip_address": "10.0.0.5"},
])
def test_values_are_checked_not_pasted(bad: dict[str, str]) -> None:
    with pytest.raises((ValueError, exception.Invalid)):
        ruleset.build("qg-x", "203.0.113.2", True, [], [bad])
    with pytest.raises(exception.Invalid, match="device"):
        ruleset.build('qg-x" accept', "203.0.113.2", True, [], [])


@pytest.mark.skipif(shutil.which("nft") is None or shutil.which("ip") is None,
                    reason="kernel lacks nftables (no nft)")
def test_the_kernel_accepts_it_twice() -> None:
    """Applied twice in a namespace: the second replaces the first (declare/delete/declare)."""
    namespace = f"sc-l3-unit-{uuid.uuid4().hex[:8]}"
    if subprocess.run(["ip", "netns", "add", namespace], capture_output=True,
                      check=False).returncode != 0:
        pytest.skip("kernel lacks network namespaces for this user")
    try:
        text = ruleset.build("qg-x", "203.0.113.2", True, ["10.0.0.0/24"], FIPS)
        for _ in range(2):
            result = subprocess.run(["ip", "netns", "exec", namespace, "nft", "-f", "-"],
                                    input=text, capture_output=True, text=True, check=False)
            assert result.returncode == 0, result.stderr
        listed = subprocess.run(["ip", "netns", "exec", namespace, "nft", "list", "ruleset"],
                                capture_output=True, text=True, check=True).stdout
        assert listed.count("table ip stackcore-router") == 1, listed
        assert "dnat to 10.0.0.5" in listed, listed
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
