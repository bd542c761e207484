"""The conformance kit's pytest plugin (entry point ``pytest11: stackcore``).

A driver package runs the core's suites against its own driver::

    # tests/test_conformance.py
    from stackcore.testing.suites.compute import *  # noqa: F401,F403

    $ pytest --stackcore-driver compute:mydriver --stackcore-config conformance.conf

The driver is found through its entry point (so the test also proves it is registered), verified
against the family contract, configured from an oslo.config file (plus ``--stackcore-set
group.option=value``; a section or option neither stackcore nor the driver knows is an error
naming it), and handed to the suite's fixtures.

Capability gating (the SQLAlchemy dialect-suite rule, made strict): a test marked
``@pytest.mark.capability("pause")`` runs whatever the driver declares.

* declared supported: it must pass;
* declared unsupported: it is expected to fail (typically with CapabilityNotSupported); if it
  *passes*, the run fails with "unexpected success" - the declaration is stale or dishonest.

Every test belongs to a feature (``@pytest.mark.feature("lifecycle")``, or its capability).
At the end a JSON result is written per driver: per feature its result and per test its
outcome - ``pass``, ``fail``, ``skip`` (with the reason: only a feature this host cannot
offer), ``unsupported`` (declared unsupported, confirmed) or ``unexpected-success`` - with the
message of every failure and skip. ``stackcore matrix`` and the docs turn it into the support
matrix.

Checks after the test: fixtures that make backend objects register a verification with
:func:`verify_after` (tear down what the test made, then prove nothing was left behind). It runs
right after the test body, *as part of the test*, so a leak fails the test it belongs to (also a
test of a capability declared unsupported, whose expected failure must not hide a leak). An
error in a fixture's own teardown is recorded against its test in the JSON result too.

The suites' modules are registered for pytest's assertion rewriting, but their failure messages
do not depend on it: every check states expected and actual values itself
(:mod:`stackcore.testing.check`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import traceback
from collections.abc import Callable, Generator, Iterable
from typing import Any

import pytest

# Before any suite module is imported (collection comes after plugins load).
pytest.register_assert_rewrite("stackcore.testing.suites")

from stackcore.exception import StackcoreError  # noqa: E402
from stackcore.matrix import RANK  # noqa: E402
from stackcore.testing import harness  # noqa: E402

_RESULTS_KEY = pytest.StashKey[dict[str, dict[str, Any]]]()
_TARGET_KEY = pytest.StashKey["harness.DriverUnderTest | None"]()
_STARTED_KEY = pytest.StashKey[str]()
_VERIFY_KEY = pytest.StashKey[list[tuple[str, Callable[[], None]]]]()
_VERIFY_FAILED_KEY = pytest.StashKey[str]()


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
    group.addoption("--stackcore-run", metavar="ID", default="",
                    help="identifier of the run this result belongs to (e.g. a CI run), "
                    "recorded in the JSON result and shown by the support matrix")
    group.addoption("--stackcore-settle", metavar="SECONDS", type=float, default=20.0,
                    help="how long the kit waits for a driver's background work (an agent "
                    "wiring a port) before failing (default 20)")
    parser.addini("stackcore_driver", "default for --stackcore-driver")
    parser.addini("stackcore_config", "default for --stackcore-config", type="paths")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "capability(name): test of an optional capability")
    config.addinivalue_line("markers", "feature(name): the support-matrix feature a test checks")
    config.addinivalue_line("markers", "family(name): suite of this plugin family")
    spec = config.getoption("--stackcore-driver") or config.getini("stackcore_driver")
    config.stash[_RESULTS_KEY] = {}
    config.stash[_STARTED_KEY] = now()
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


def pytest_unconfigure(config: pytest.Config) -> None:
    target = _target(config)
    if target is not None:
        target.close()  # no /tmp/stackcore-conformance-* left behind


def pytest_report_header(config: pytest.Config) -> str | None:
    target = _target(config)
    if target is None:
        return None
    declared = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in target.declared.items())
    return (f"stackcore conformance: {target.family}:{target.name} ({target.plugin.target}); "
            f"capabilities: {declared or 'none'}")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


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
                strict=True, reason=unsupported_reason(target, cap.args[0])))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def unsupported_reason(target: harness.DriverUnderTest, capability: str) -> str:
    """Why a test of ``capability`` is expected to fail (also the unittest runner's reason)."""
    return (f"capability {capability!r} is declared unsupported by "
            f"{target.family}:{target.name}; unexpected success means the declaration is wrong")


# --- checks after the test body -----------------------------------------------------------


def verify_after(request: pytest.FixtureRequest, what: str, check: Callable[[], None]) -> None:
    """Run ``check`` right after the test body, as part of the test (last registered first).

    For fixtures that make backend objects: ``check`` removes them and raises when something
    was left behind, which then fails *this* test with ``what`` in the message. Checks run even
    when the test body failed (their failures are then added to the test's error)."""
    request.node.stash.setdefault(_VERIFY_KEY, []).append((what, check))


def run_checks(stash: pytest.Stash) -> list[str]:
    """Run the checks :func:`verify_after` registered in a test's stash; their failures."""
    failures = []
    checks = stash.get(_VERIFY_KEY, [])
    while checks:
        what, check = checks.pop()
        try:
            check()
        except Exception as err:  # noqa: BLE001 - every check runs; all failures reported
            failures.append(f"{what}: {err}")
    return failures


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    try:
        result = yield
    except BaseException as err:
        failures = run_checks(pyfuncitem.stash)
        if failures:
            pyfuncitem.stash[_VERIFY_FAILED_KEY] = "; ".join(failures)
            err.add_note("and after the test: " + "; ".join(failures))
        raise
    failures = run_checks(pyfuncitem.stash)
    if failures:
        pyfuncitem.stash[_VERIFY_FAILED_KEY] = "; ".join(failures)
        raise AssertionError("after the test: " + "; ".join(failures))
    return result


# --- results ----------------------------------------------------------------------------------


def _feature(item: pytest.Item) -> str:
    for name in ("feature", "capability"):
        marker = item.get_closest_marker(name)
        if marker is not None:
            return str(marker.args[0])
    return "other"


def exconly(err: BaseException) -> str:
    """An exception as pytest's report of it reads (type, message and notes)."""
    return "".join(traceback.format_exception_only(type(err), err)).rstrip()


def _message(report: pytest.TestReport) -> str:
    """One readable line (or a few) saying why a test did not pass."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and crash.message:
        return str(crash.message)
    text = str(longrepr or "").strip()
    return text.splitlines()[-1] if text else ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if item.get_closest_marker("family") is None:
        return report
    leak = item.stash.get(_VERIFY_FAILED_KEY, None)
    if report.when == "call" and leak and report.skipped and hasattr(report, "wasxfail"):
        # An expected failure (capability declared unsupported) must not hide a leak.
        report.outcome = "failed"
        report.longrepr = f"after the test (capability declared unsupported): {leak}"
        del report.wasxfail
    record = item.config.stash[_RESULTS_KEY].setdefault(
        item.nodeid, {"feature": _feature(item), "outcome": None, "message": "", "phase": ""})
    if report.when == "setup" and not report.passed:
        record.update(outcome=_outcome(report), message=_message(report), phase="setup")
    elif report.when == "call":
        record.update(outcome=_outcome(report), phase="call",
                      message="" if report.passed else _message(report))
    elif report.when == "teardown" and report.failed:
        text = f"teardown: {_message(report)}"
        record.update(outcome="fail", phase="teardown",
                      message=f"{record['message']}; {text}" if record["message"] else text)
    return report


def _outcome(report: pytest.TestReport) -> str:
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


def result_document(target: harness.DriverUnderTest, records: dict[str, dict[str, Any]],
                    run: str, started: str) -> dict[str, Any]:
    """The JSON result of one kit run (see the module doc)."""
    by_feature: dict[str, dict[str, dict[str, Any]]] = {}
    for nodeid, record in records.items():
        if record["outcome"] is None:
            continue
        by_feature.setdefault(record["feature"], {})[nodeid] = {
            k: record[k] for k in ("outcome", "message", "phase")}
    features: dict[str, dict[str, Any]] = {}
    for feature, tests in sorted(by_feature.items()):
        outcomes = [t["outcome"] for t in tests.values()]
        features[feature] = {
            "result": _worst(outcomes),
            "capability": feature in target.declared,
            "declared": target.declared.get(feature),
            "counts": {o: outcomes.count(o) for o in sorted(set(outcomes))},
            "reasons": sorted({t["message"] for t in tests.values()
                               if t["outcome"] in ("skip", "fail", "unexpected-success")
                               and t["message"]}),
            "tests": dict(sorted(tests.items())),
        }
    all_outcomes = [t["outcome"] for f in features.values() for t in f["tests"].values()]
    return {
        "family": target.family,
        "driver": target.name,
        "target": target.plugin.target,
        "distribution": target.plugin.distribution,
        "driver_version": getattr(target.plugin.cls, "VERSION", ""),
        "capabilities": target.declared,
        "config": [os.path.basename(p) for p in target.config_files],
        "run": run,
        "host": platform.node(),
        "started_at": started,
        "finished_at": now(),
        "summary": {o: all_outcomes.count(o) for o in sorted(set(all_outcomes))},
        "features": features,
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    target = _target(config)
    records = config.stash.get(_RESULTS_KEY, {})
    if target is None or not records:
        return
    run = config.getoption("--stackcore-run") or os.environ.get("STACKCORE_CONFORMANCE_RUN", "")
    document = result_document(target, records, run, config.stash[_STARTED_KEY])
    path = config.getoption("--stackcore-results") or os.path.join(
        ".stackcore-conformance", f"{target.family}-{target.name}.json"
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")


@pytest.fixture(scope="session")
def stackcore_settle(request: pytest.FixtureRequest) -> float:
    """Seconds the kit waits for a driver's background work (``--stackcore-settle``)."""
    return float(request.config.getoption("--stackcore-settle"))


@pytest.fixture(scope="session")
def stackcore_target(request: pytest.FixtureRequest) -> harness.DriverUnderTest:
    """The driver under test (family, entry point, verified class, configuration)."""
    target = _target(request.config)
    if target is None:
        raise pytest.UsageError("no driver selected: pass --stackcore-driver FAMILY:NAME")
    return target
