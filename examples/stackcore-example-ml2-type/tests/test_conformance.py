"""stackcore's ML2 type driver conformance kit against ``geneve`` (``pytest`` or
``tox -e conformance``)."""

from stackcore.testing.suites.network_type import *  # noqa: F403
