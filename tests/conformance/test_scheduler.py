"""Runs the shipped scheduler filter/weigher suite
(``--stackcore-driver scheduler.compute_filters:RamFilter`` ...)."""

from stackcore.testing.suites.scheduler import *  # noqa: F403
