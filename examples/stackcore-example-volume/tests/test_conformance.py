"""stackcore's volume conformance kit against the ``dirfile`` driver (``pytest`` or
``tox -e conformance``; the driver and its config are selected in pyproject.toml)."""

from stackcore.testing.suites.volume import *  # noqa: F403
