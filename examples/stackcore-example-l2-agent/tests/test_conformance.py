"""stackcore's L2 agent conformance kit against ``dirwire`` (``pytest`` or
``tox -e conformance``)."""

from stackcore.testing.suites.network_agent import *  # noqa: F403
