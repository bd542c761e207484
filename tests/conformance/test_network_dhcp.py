"""Runs the shipped DHCP driver suite (``--stackcore-driver network.dhcp:fake`` ...)."""

from stackcore.testing.suites.network_dhcp import *  # noqa: F403
