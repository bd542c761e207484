"""The conformance kit's pytest plugin (entry point ``pytest11: stackcore``).

A driver package runs the core's suites against its own driver::

    # tests/test_conformance.py
    from stackcore.testing.suites.compute import *  # noqa: F401,F403

    $ pytest --stackcore-driver compute:mydriver --stackcore-config conformance.conf

The driver is found through its entry point (so the test also proves it is registered), verified
against the family contract, configured from an oslo.config file (plus ``--stackcore-set
group.option=value``), and handed to the suite's fixtures.

Capability gating (the SQLAlchemy dialect-suite rule, made strict): a test marked
``@pytest.mark.capability("pause")`` runs whatever the driver declares.

* declared supported: it must pass;
* declared unsupported: it is expected to fail (typically with CapabilityNotSupported); if it
  *passes*, the run fails with "unexpected success" - the declaration is stale or dishonest.

Every test belongs to a feature (``@pytest.mark.feature("lifecycle")``, or its capability).
At the end a JSON result is written per driver - feature -> pass / fail / unsupported /
unexpected-success / skip - which ``stackcore matrix`` turns into the support matrix.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Generator, Iterable

import pytest

from stackcore.exception import StackcoreError
from stackcore.matrix import RANK
from stackcore.testing import harness

_RESULTS_KEY = pytest.StashKey[dict[str, dict[str, str]]]()
_TARGET_KEY = pytest.StashKey["harness.DriverUnderTest | None"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stackcore", "stackcore conformance kit")
    group.addoption("--stackcore-driver", metavar="FAMILY:NAME",
                    help="driver under test: family and entry-point name, e.g. compute:fake")
    group.addoption("--stackcore-config", metavar="FILE", action="append", default=[],
                    help="oslo.config file(s) with the driver's options")
    group.addoption("--stackcore-set", metavar="GROUP.OPTION=VALUE", action="append",
                    default=[], help="set one option (repeatable)")
    group.addoption("--stackcore-results", metavar="PATH",
                    help="where to write the JSON result (default: "
                    ".stackcore-conformance/<family>-<name>.json)")
    parser.addini("stackcore_driver", "default for --stackcore-driver")
    parser.addini("stackcore_config", "default for --stackcore-config", type="paths")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "capability(name): test of an optional capability")
    config.addinivalue_line("markers", "feature(name): the support-matrix feature a test checks")
    config.addinivalue_line("markers", "family(name): suite of this plugin family")
    spec = config.getoption("--stackcore-driver") or config.getini("stackcore_driver")
    config.stash[_RESULTS_KEY] = {}
    if not spec:
        config.stash[_TARGET_KEY] = None
        return
    files = list(config.getoption("--stackcore-config")) or [
        str(p) for p in config.getini("stackcore_config")
    ]
    try:
        config.stash[_TARGET_KEY] = harness.DriverUnderTest.from_spec(
            spec, files, config.getoption("--stackcore-set")
        )
    except StackcoreError as err:
        # One clear line naming the culprit, not an INTERNALERROR traceback.
        raise pytest.UsageError(f"stackcore conformance: {type(err).__name__}: {err}") from err


def _target(config: pytest.Config) -> harness.DriverUnderTest | None:
    return config.stash.get(_TARGET_KEY, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only the suites of the driver's family; gate capability tests on declarations."""
    target = _target(config)
    kept, dropped = [], []
    for item in items:
        family = item.get_closest_marker("family")
        if family is None:
            kept.append(item)
            continue
        if target is None or family.args[0] != target.family:
            dropped.append(item)
            continue
        kept.append(item)
        cap = item.get_closest_marker("capability")
        if cap is not None and not target.declared.get(cap.args[0], False):
            item.add_marker(pytest.mark.xfail(
                strict=True,
                reason=f"capability {cap.args[0]!r} is declared unsupported by "
                f"{target.family}:{target.name}; unexpected success means the declaration "
                "is wrong",
            ))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _feature(item: pytest.Item) -> str:
    for name in ("feature", "capability"):
        marker = item.get_closest_marker(name)
        if marker is not None:
            return str(marker.args[0])
    return "other"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if item.get_closest_marker("family") is None:
        return report
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = _outcome(item, report)
        results = item.config.stash[_RESULTS_KEY].setdefault(_feature(item), {})
        results[item.nodeid] = outcome
    return report


def _outcome(item: pytest.Item, report: pytest.TestReport) -> str:
    declared_unsupported = hasattr(report, "wasxfail")
    if report.skipped and declared_unsupported:
        return "unsupported"
    if report.skipped:
        return "skip"
    if report.failed and "XPASS(strict)" in str(report.longrepr):
        return "unexpected-success"
    return "pass" if report.passed else "fail"


def _worst(outcomes: Iterable[str]) -> str:
    return max(outcomes, key=lambda outcome: RANK[outcome])


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = _target(session.config)
    results = session.config.stash.get(_RESULTS_KEY, {})
    if target is None or not results:
        return
    features = {
        feature: {
            "result": _worst(tests.values()),
            "tests": dict(sorted(tests.items())),
        }
        for feature, tests in sorted(results.items())
    }
    document = {
        "family": target.family,
        "driver": target.name,
        "target": target.plugin.target,
        "driver_version": getattr(target.plugin.cls, "VERSION", ""),
        "capabilities": target.declared,
        "features": features,
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(),
    }
    path = session.config.getoption("--stackcore-results") or os.path.join(
        ".stackcore-conformance", f"{target.family}-{target.name}.json"
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")


@pytest.fixture(scope="session")
def stackcore_target(request: pytest.FixtureRequest) -> harness.DriverUnderTest:
    """The driver under test (family, entry point, verified class, configuration)."""
    target = _target(request.config)
    if target is None:
        raise pytest.UsageError("no driver selected: pass --stackcore-driver FAMILY:NAME")
    return target
