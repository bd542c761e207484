"""stackcore's scheduler conformance kit; the plugin is chosen with --stackcore-driver (tox
runs it once for the filter and once for the weigher)."""

from stackcore.testing.suites.scheduler import *  # noqa: F403
