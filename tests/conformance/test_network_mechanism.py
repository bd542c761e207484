"""Runs the shipped ML2 mechanism driver suite (``--stackcore-driver
network.mechanism:fake`` ...)."""

from stackcore.testing.suites.network_mechanism import *  # noqa: F403
