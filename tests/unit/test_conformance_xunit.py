"""The conformance kit under unittest runners (:mod:`stackcore.testing.xunit`).

Each check runs the same driver twice, in separate processes as a driver repository would:
once with pytest and the kit's plugin, once as the generated testtools TestCases under
``python -m unittest`` (or ``python -m testtools.run``) configured by environment variables;
both JSON results must be equal but for their timestamps (so every per-test outcome, message
and phase is the same), and both runs must pass or fail alike.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stackcore import families
from stackcore.testing.xunit import cases, session
from tests.unit.test_conformance_kit import KIT_RULES

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "tests" / "conformance" / "configs"
#: Plugins that are no part of the kit, off in the inner pytest runs (faster start).
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:platformdirs")
TIMESTAMPS = ("started_at", "finished_at")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def kit_dir(tmp_path: Path) -> Path:
    """A driver repository's test directory, with the kit's extra drivers registered."""
    site = tmp_path / "site"
    info = site / "xunit_rules-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xunit-rules\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[stackcore.compute.drivers]\nhonest = kit_rules:HonestNoPause\n"
        "liar = tests.kit.compute:Liar_pause\n"
        "[stackcore.volume.drivers]\nnodata = kit_rules:NoDataHere\n"
        "leaky = kit_rules:LeakyAndUnsupported\n")
    (site / "kit_rules.py").write_text(KIT_RULES)
    return tmp_path


def _env(kit_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKCORE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(kit_dir / "site"), str(REPO)])
    env.update(extra)
    return env


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def both_runners(kit_dir: Path, spec: str, suite: str, config: Path | None = None,
                 select: str = "", runner: str = "unittest"
                 ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any],
                            subprocess.CompletedProcess[str], dict[str, Any]]:
    """pytest's run and the unittest runner's run of ``suite`` on ``spec``: (process, JSON
    result) of each. ``select``: one ``Class::test`` only."""
    (kit_dir / "test_native.py").write_text(
        f"from stackcore.testing.suites.{suite} import *  # noqa: F403\n")
    (kit_dir / "test_xunit.py").write_text(
        "from stackcore.testing import xunit\n"
        f"xunit.install('stackcore.testing.suites.{suite}', globals())\n")
    target = "test_native.py" + (f"::{select}" if select else "")
    native = _run([sys.executable, "-m", "pytest", *QUIET, "--rootdir", str(kit_dir), target,
                   "--stackcore-driver", spec, "--stackcore-results", "native.json",
                   "--stackcore-settle", "5",
                   *(["--stackcore-config", str(config)] if config else [])],
                  kit_dir, _env(kit_dir))
    name = "test_xunit" + (f".{select.replace('::', '.')}" if select else "")
    xunit = _run([sys.executable, "-m", runner, name], kit_dir, _env(
        kit_dir, STACKCORE_DRIVER=spec, STACKCORE_CONFIG=str(config or ""),
        STACKCORE_RESULTS="xunit.json", STACKCORE_SETTLE="5"))
    results = []
    for path in ("native.json", "xunit.json"):
        assert (kit_dir / path).exists(), (path, native.stdout[-2000:], xunit.stderr[-3000:])
        doc = json.loads((kit_dir / path).read_text())
        for key in TIMESTAMPS:
            doc.pop(key)
        results.append(doc)
    return native, results[0], xunit, results[1]


def _same(native_doc: dict[str, Any], xunit_doc: dict[str, Any]) -> None:
    """Equal JSON results, aside from the test file's name (each runner has its own) and the
    random ids (of volumes, ...) a message names."""
    native, xunit = (json.loads(UUID.sub("<uuid>", json.dumps(doc, sort_keys=True)))
                     for doc in (native_doc, xunit_doc))
    xunit = json.loads(json.dumps(xunit).replace("test_xunit.py", "test_native.py"))
    assert xunit == native, _diff(native, xunit)


def _diff(native_doc: dict[str, Any], xunit_doc: dict[str, Any]) -> list[Any]:
    tests = [({k: v for k, v in d.items() if k != "features"},
              {t: r for f in d["features"].values() for t, r in f["tests"].items()})
             for d in (native_doc, xunit_doc)]
    (top_a, a), (top_b, b) = tests
    return [(k, top_a.get(k), top_b.get(k)) for k in top_a.keys() | top_b.keys()
            if top_a.get(k) != top_b.get(k)] + [
        (t, a.get(t), b.get(t)) for t in sorted(a.keys() | b.keys()) if a.get(t) != b.get(t)]


@pytest.mark.parametrize(("spec", "suite", "config", "expected"), [
    ("compute:fake", "compute", None, {"pass": 32}),
    ("volume:fake", "volume", "volume-fake.conf", {"pass": 38, "unsupported": 3}),
    ("scheduler.compute_filters:RamFilter", "scheduler", None, {"pass": 4}),
    ("compute:honest", "compute", None, None),
])
def test_same_outcomes_and_result_as_pytest(kit_dir: Path, spec: str, suite: str,
                                            config: str | None,
                                            expected: dict[str, int] | None) -> None:
    """In-tree drivers (and one declaring a capability unsupported, honestly): every test's
    outcome, message and phase as pytest's, and the same JSON result."""
    native, native_doc, xunit, xunit_doc = both_runners(
        kit_dir, spec, suite, CONFIGS / config if config else None)
    assert native.returncode == 0, native.stdout[-3000:]
    assert xunit.returncode == 0, xunit.stderr[-3000:]
    _same(native_doc, xunit_doc)
    if expected is not None:
        assert xunit_doc["summary"] == expected, xunit_doc["summary"]
    if "unsupported" in xunit_doc["summary"]:  # reported to unittest as expected failures
        count = xunit_doc["summary"]["unsupported"]
        assert f"expected failures={count}" in xunit.stderr, xunit.stderr[-500:]
    # only the target's family: the scheduler module holds four
    ran = int(xunit.stderr.split("Ran ")[1].split()[0])
    assert ran == sum(xunit_doc["summary"].values()), (ran, xunit_doc["summary"])


@pytest.mark.parametrize("runner", ["unittest", "testtools.run"])
def test_a_declared_unsupported_capability_that_passes_fails_the_run(
        kit_dir: Path, runner: str) -> None:
    native, native_doc, xunit, xunit_doc = both_runners(
        kit_dir, "compute:liar", "compute", runner=runner)
    assert native.returncode != 0 and xunit.returncode != 0, (native.returncode,
                                                              xunit.returncode)
    _same(native_doc, xunit_doc)
    pause = xunit_doc["features"]["pause"]
    assert pause["result"] == "unexpected-success", pause
    assert {r["outcome"] for r in pause["tests"].values()} == {"unexpected-success"}, pause
    output = xunit.stderr + xunit.stdout  # unittest: "unexpected successes=2"
    assert output.lower().count("unexpected success") >= len(pause["tests"]), output[-800:]
    assert xunit_doc["features"]["lifecycle"]["result"] == "pass", xunit_doc["summary"]


def test_a_leak_fails_the_test_even_when_the_capability_is_unsupported(kit_dir: Path) -> None:
    node = "TestVolumeCapabilities::test_two_hosts_attached_at_once"
    native, native_doc, xunit, xunit_doc = both_runners(
        kit_dir, "volume:leaky", "volume", CONFIGS / "volume-fake.conf", select=node)
    assert native.returncode != 0 and xunit.returncode != 0, xunit.stderr[-2000:]
    _same(native_doc, xunit_doc)
    (record,) = xunit_doc["features"]["multiattach"]["tests"].values()
    assert record["outcome"] == "fail", record
    assert record["message"].startswith(
        "after the test (capability declared unsupported): "), record
    assert "leaked-" in record["message"], record


def test_an_unavailable_feature_is_a_skip_with_its_reason(kit_dir: Path) -> None:
    native, native_doc, xunit, xunit_doc = both_runners(
        kit_dir, "volume:nodata", "volume", CONFIGS / "volume-fake.conf")
    assert native.returncode == 0 and xunit.returncode == 0, xunit.stderr[-2000:]
    _same(native_doc, xunit_doc)
    assert xunit_doc["features"]["data"]["result"] == "skip", xunit_doc["features"]["data"]
    assert "skipped=" in xunit.stderr, xunit.stderr[-300:]


def test_without_a_driver_every_test_fails_naming_the_variable(kit_dir: Path) -> None:
    (kit_dir / "test_xunit.py").write_text(
        "from stackcore.testing import xunit\n"
        "xunit.install('stackcore.testing.suites.compute', globals())\n")
    result = _run([sys.executable, "-m", "unittest", "test_xunit"], kit_dir, _env(kit_dir))
    assert result.returncode != 0
    assert "no driver selected: set STACKCORE_DRIVER=FAMILY:NAME" in result.stderr, \
        result.stderr[-1000:]
    assert not (kit_dir / ".stackcore-conformance").exists()  # nothing ran: no result


def test_pytest_does_not_collect_the_generated_cases(kit_dir: Path) -> None:
    (kit_dir / "test_xunit.py").write_text(
        "from stackcore.testing import xunit\n"
        "xunit.install('stackcore.testing.suites.compute', globals())\n")
    result = _run([sys.executable, "-m", "pytest", *QUIET, "--rootdir", str(kit_dir),
                   "--collect-only", "-q", "test_xunit.py"], kit_dir,
                  _env(kit_dir, STACKCORE_DRIVER="compute:fake"))
    assert "no tests collected" in result.stdout, result.stdout[-1000:]


@pytest.mark.parametrize("kind", sorted({k.suite for k in families.kinds()}))
def test_every_suite_builds(kind: str) -> None:
    """Every suite uses only what the resolver provides (else the build names what)."""
    import importlib

    module = importlib.import_module(kind)
    built = cases.build(module, {"__name__": "kit", "__file__": "kit.py"}, session.current,
                        None)
    names = [name for cls in built.values() for name in dir(cls) if name.startswith("test")]
    assert built and names, kind
    assert all(getattr(cls, "__test__", True) is False for cls in built.values())
