"""stackcore's ML2 mechanism driver conformance kit against ``jsonlog`` (``pytest`` or
``tox -e conformance``)."""

from stackcore.testing.suites.network_mechanism import *  # noqa: F403
