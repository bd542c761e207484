"""Runs the shipped volume conformance suite (select the driver with --stackcore-driver
volume:<name> and its config with --stackcore-config tests/conformance/configs/volume-*.conf;
``stackcore conformance --family volume`` does both for every installed driver)."""

from stackcore.testing.suites.volume import *  # noqa: F403
