"""Runs the shipped L2 agent suite (``--stackcore-driver network.agent:fake`` ...)."""

from stackcore.testing.suites.network_agent import *  # noqa: F403
