"""Runs the shipped compute conformance suite (select the driver with --stackcore-driver)."""

from stackcore.testing.suites.compute import *  # noqa: F403
