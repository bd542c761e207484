"""Everything a third-party driver package needs to run stackcore's conformance kit.

`pytest` (see [tool.pytest.ini_options] in pyproject.toml for the driver selection) runs the
whole compute suite against the `jsonfile` driver and writes
.stackcore-conformance/compute-jsonfile.json for `stackcore matrix`.
"""

from stackcore.testing.suites.compute import *  # noqa: F403
