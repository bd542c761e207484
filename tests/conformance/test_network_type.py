"""Runs the shipped ML2 type driver suite (``--stackcore-driver network.type:vxlan`` ...)."""

from stackcore.testing.suites.network_type import *  # noqa: F403
