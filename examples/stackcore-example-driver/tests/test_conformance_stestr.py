"""The same conformance kit as test_conformance.py, for stestr / unittest runners.

`stestr run` (see .stestr.conf, and the conformance-stestr env of tox.ini) runs the compute
suite as testtools TestCases built from the very same suite definitions; the driver comes from
the environment (STACKCORE_DRIVER, STACKCORE_CONFIG) and the same
.stackcore-conformance/compute-jsonfile.json is written for `stackcore matrix`. pytest skips
these classes (it runs the suite natively through test_conformance.py).
"""

from stackcore.testing import xunit

xunit.install("stackcore.testing.suites.compute", globals())
