"""The conformance kit under unittest runners (stestr, ``python -m testtools.run``, unittest).

A driver repository in the OpenStack style runs its tests with stestr. It gets the kit as
real ``testtools.TestCase`` classes, built from the *same* suite definitions the pytest plugin
runs, in one line of a test module::

    # tests/test_conformance_stestr.py
    from stackcore.testing import xunit
    xunit.install("stackcore.testing.suites.compute", globals())

    $ STACKCORE_DRIVER=compute:mydriver STACKCORE_CONFIG=tests/conformance.conf stestr run

The driver is selected and configured by environment variables (:mod:`.session`). Each
pytest test is one unittest test with the same outcome: a capability declared unsupported is
an expected failure, and an unexpected success when it passes (which fails the run); the
``verify_after`` checks run as part of the test; a ``pytest.skip`` is a skip. When the process
ends, the JSON result is written in the plugin's format (``stackcore matrix`` reads either).

Decision: the suites stay pytest classes and fixtures, and this package runs them itself with
a small fixture resolver (:mod:`.fixtures`) limited to what the suites use, rather than
rewriting every suite body into plain callables shared by two runners. The suites are the
spec third-party drivers already import, and a rewrite would change every test of ~4,000
lines for one runner; the resolver is ~200 lines, and a unit test builds the cases of every
suite module, so a suite that starts using something the resolver lacks (fixture ``params``,
another scope, a new pytest fixture) fails there with its name, not in a driver's CI. pytest
stays installed (the suites import it for their marks and ``pytest.skip``) but never runs:
no test shells out to it.
"""

from __future__ import annotations

import importlib
from collections.abc import MutableMapping
from typing import Any

from stackcore.testing.xunit import cases, session


def install(suite: str, namespace: MutableMapping[str, Any]) -> list[str]:
    """Put the TestCase classes of the suite module ``suite`` into ``namespace`` (a test
    module's ``globals()``); return their names.

    With ``STACKCORE_DRIVER`` set, only the classes of its family are made (the scheduler
    suite holds four families); without it every class is made and each of its tests fails
    naming the variable.
    """
    module = importlib.import_module(suite)
    built = cases.build(module, namespace, session.current, session.current().family)
    namespace.update(built)
    return sorted(built)
