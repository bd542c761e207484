"""The conformance kit keeps declarations honest and refuses broken drivers precisely."""

from __future__ import annotations

import json

import pytest

from stackcore.compute.driver import NAMESPACE

pytest_plugins = ["pytester"]

SUITE = "from stackcore.testing.suites.compute import *  # noqa\n"

DRIVERS = """
from typing import ClassVar
from stackcore.compute.fake import FakeHypervisorDriver


class NoPause(FakeHypervisorDriver):
    '''Honest: declares pause unsupported and does not implement it.'''
    capabilities: ClassVar[dict] = {**FakeHypervisorDriver.capabilities, "pause": False}
    def pause(self, instance):
        from stackcore.compute.driver import HypervisorDriver
        return HypervisorDriver.pause(self, instance)
    def unpause(self, instance):
        from stackcore.compute.driver import HypervisorDriver
        return HypervisorDriver.unpause(self, instance)


class Liar(FakeHypervisorDriver):
    '''Dishonest: pause works, but it is declared unsupported.'''
    capabilities: ClassVar[dict] = {**FakeHypervisorDriver.capabilities, "pause": False}


class Leaky(FakeHypervisorDriver):
    '''Declares everything, but destroy leaves the instance behind.'''
    def destroy(self, instance, network_info, block_device_info, destroy_disks=True):
        pass


class Broken(FakeHypervisorDriver):
    VERSION = ""
    def spawn(self, instance, image):
        pass
"""


@pytest.fixture
def kit(pytester, installed_plugins):
    installed_plugins("kit-drivers", {NAMESPACE: {
        "nopause": "kit_drivers:NoPause", "liar": "kit_drivers:Liar",
        "leaky": "kit_drivers:Leaky", "broken": "kit_drivers:Broken"}},
        {"kit_drivers": DRIVERS})
    pytester.makepyfile(test_conformance=SUITE)

    def run(driver: str):
        results = pytester.path / "results.json"
        outcome = pytester.runpytest_inprocess(
            "--stackcore-driver", f"compute:{driver}", "--stackcore-results", str(results),
            "-p", "no:cacheprovider",
        )
        doc = json.loads(results.read_text()) if results.exists() else None
        return outcome, doc

    return run


def test_honest_unsupported_capability_is_reported_unsupported(kit) -> None:
    outcome, doc = kit("nopause")
    outcome.assert_outcomes(passed=19, xfailed=1)
    assert doc["features"]["pause"]["result"] == "unsupported"
    assert doc["features"]["lifecycle"]["result"] == "pass"
    assert doc["capabilities"]["pause"] is False


def test_unsupported_capability_that_passes_is_flagged(kit) -> None:
    outcome, doc = kit("liar")
    assert outcome.ret != 0
    outcome.stdout.fnmatch_lines(["*XPASS(strict)*pause*declared unsupported*"])
    assert doc["features"]["pause"]["result"] == "unexpected-success"


def test_behavioural_failure_is_caught(kit) -> None:
    outcome, doc = kit("leaky")
    assert outcome.ret != 0
    assert doc["features"]["lifecycle"]["result"] == "fail"
    outcome.stdout.fnmatch_lines(["*destroy left instances on the backend*"])


def test_broken_driver_is_refused_with_a_precise_message(kit) -> None:
    outcome, doc = kit("broken")
    assert outcome.ret != 0 and doc is None
    text = str(outcome.stderr) + "\n".join(outcome.outlines + outcome.errlines)
    assert "DriverContractError" in text
    assert "spawn(): missing parameter 'network_info'" in text
    assert "VERSION is missing" in text
    assert "kit-drivers" in text
