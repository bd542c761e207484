"""The conformance kit proven: every kit test fails for a driver that breaks what it checks.

The zoo (``tests/kit/``) holds deliberately broken drivers of every family, each subclassing a
core fake (or core plugin) and breaking one behaviour. The meta-test runs the kit - the real
pytest plugin, in-process - on each of them and requires the targeted test(s) to fail (or, for
a capability declared unsupported that works, to be an unexpected success) with a message that
names the defect with its expected and actual values. :func:`test_every_kit_test_is_killed`
requires every test of every suite to be targeted by at least one zoo driver, and
:func:`test_kill_ratio` reports caught / total.

Also here: the kit's own rules (results, skips with reasons, leaks failing the test, strict
configuration, no temporary directory left behind, messages without assertion rewriting).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stevedore import extension

from stackcore import families
from stackcore.plugins import loader
from tests.kit.registry import Broken

# Imported once here, so the in-process kit runs below find them loaded (pytester drops what
# a run imports, and re-importing the suites for every broken driver would dominate the time).
for _kind in families.kinds():
    importlib.import_module(_kind.suite)
for _family in families.all_families():  # tables are defined once per process
    for _models in _family.models:
        importlib.import_module(_models)
for _kind in families.kinds():  # plugin classes too (contracts check them by identity)
    for _ep in importlib.metadata.entry_points(group=_kind.namespace):
        if _ep.module.startswith("stackcore."):
            importlib.import_module(_ep.module)


@pytest.fixture(scope="module", autouse=True)
def _warm(tmp_path_factory: pytest.TempPathFactory) -> None:
    """What a Cloud imports on start, imported once (see above)."""
    import stackcore

    stackcore.Cloud(overrides={"DEFAULT": {"state_path": str(tmp_path_factory.mktemp("warm"))}},
                    services=["network"]).close()

pytest_plugins = ["pytester"]

ZOO_MODULES = ("compute", "volume", "network_type", "network_mechanism", "network_agent",
               "network_dhcp", "scheduler", "image_store", "volume_backup")
ZOO: list[Broken] = [entry for name in ZOO_MODULES
                     for entry in importlib.import_module(f"tests.kit.{name}").ZOO]

#: The configuration every driver of a family runs with in the zoo (plus the entry's own).
BASE_CONFIG = {
    "volume": "[backend]\nvolume_driver = fake\n",
    "network.type": textwrap.dedent("""\
        [ml2_type_vlan]
        network_vlan_ranges = physnet1:100:149,physnet1:200:209,physnet2:10:19,provider-only
        """),
}
#: A working plugin of each kind, for collecting the suites' tests.
REFERENCE = {"compute": "fake", "volume": "fake", "network.type": "vlan",
             "network.mechanism": "fake", "network.agent": "fake", "network.dhcp": "fake",
             "scheduler.compute_filters": "RamFilter", "scheduler.compute_weighers": "RAMWeigher",
             "scheduler.volume_filters": "CapacityFilter",
             "scheduler.volume_weighers": "CapacityWeigher", "image.store": "file",
             "volume.backup": "posix"}
#: How long the zoo's agents are given to act (a broken one never does).
SETTLE = "3"
#: Inner runs: no cache, no unrelated plugins (each would be set up again per run).
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:platformdirs", "-q")

_caught: dict[str, bool] = {}


def _suite_file(kind: str) -> str:
    suite = families.get(kind).suite
    module = importlib.import_module(suite)
    assert module.__file__ is not None
    return module.__file__


@pytest.fixture(scope="module")
def zoo_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One throwaway distribution registering every zoo driver under its family's
    namespace, as a third-party package would."""
    root = tmp_path_factory.mktemp("zoo-site")
    info = root / "stackcore_kit_zoo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stackcore-kit-zoo\n"
                                   "Version: 1.0\n")
    groups: dict[str, list[str]] = {}
    for entry in ZOO:
        namespace = families.get(entry.family).namespace
        groups.setdefault(namespace, []).append(f"{entry.name} = {entry.target}")
    (info / "entry_points.txt").write_text("".join(
        f"[{ns}]\n" + "\n".join(lines) + "\n" for ns, lines in groups.items()))
    sys.path.insert(0, str(root))
    _forget()
    yield
    sys.path.remove(str(root))
    _forget()


def _forget() -> None:
    extension.ExtensionManager.ENTRY_POINT_CACHE.clear()
    loader._entry_point_owners.cache_clear()
    loader._entry_point_texts.cache_clear()
    importlib.invalidate_caches()


def run_kit(pytester: pytest.Pytester, kind: str, name: str, config: str = "",
            select: tuple[str, ...] = (), *extra: str) -> tuple[Any, dict[str, Any] | None]:
    """Run the kit in-process on ``kind:name`` (only the ``select`` tests when given);
    returns pytest's outcome and the JSON result."""
    suite = _suite_file(kind)
    results = pytester.path / f"{kind}-{name}.json"
    results.unlink(missing_ok=True)
    args = [f"{suite}::{node}" for node in select] or [suite]
    conf = BASE_CONFIG.get(kind, "") + config
    if conf:
        path = pytester.path / f"{kind}-{name}.conf"
        path.write_text(conf)
        args += ["--stackcore-config", str(path)]
    outcome = pytester.runpytest_inprocess(
        *args, "--stackcore-driver", f"{kind}:{name}", "--stackcore-results", str(results),
        "--stackcore-settle", SETTLE, *QUIET, *extra)
    doc = json.loads(results.read_text()) if results.exists() else None
    return outcome, doc


def _record(doc: dict[str, Any] | None, node: str) -> dict[str, Any] | None:
    for feature in (doc or {}).get("features", {}).values():
        for nodeid, record in feature["tests"].items():
            if nodeid.endswith("::" + node):
                return dict(record)
    return None


# --- the meta-test ----------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.spec)
def test_the_kit_catches_each_broken_driver(pytester: pytest.Pytester, zoo_installed: None,
                                            entry: Broken) -> None:
    outcome, doc = run_kit(pytester, entry.family, entry.name, entry.config, entry.kills)
    caught = True
    problems = []
    for node in entry.kills:
        record = _record(doc, node)
        if record is None:
            problems.append(f"{node}: not run ({outcome.outlines[-3:]})")
            caught = False
            continue
        if record["outcome"] != entry.outcome:
            problems.append(f"{node}: outcome {record['outcome']!r}, expected "
                            f"{entry.outcome!r} ({record['message'][:300]})")
            caught = False
        elif entry.expect not in record["message"]:
            problems.append(f"{node}: message {record['message'][:400]!r} does not say "
                            f"{entry.expect!r}")
            caught = False
        elif entry.outcome == "fail" and not re.search(r"expected .+ got\b|raised \w+",
                                                        record["message"]):
            problems.append(f"{node}: message {record['message'][:400]!r} names no expected "
                            "and actual value")
            caught = False
    _caught[entry.spec] = caught
    assert outcome.ret != 0, f"{entry.spec} ({entry.defect}): the kit run passed"
    assert not problems, f"{entry.spec} ({entry.defect}): " + "; ".join(problems)


def _collected(pytester: pytest.Pytester, kind: str) -> set[str]:
    """Node ids (Class::test[param]) of the suite of ``kind``."""
    outcome = pytester.runpytest_inprocess(
        _suite_file(kind), "--collect-only", "--stackcore-driver",
        f"{kind}:{REFERENCE[kind]}", *QUIET,
        *(["--stackcore-config", str(_base_config(pytester, kind))]
          if kind in BASE_CONFIG else []))
    return {line.split("::", 1)[1] for line in outcome.outlines
            if "::" in line and not line.startswith(" ")}


def _base_config(pytester: pytest.Pytester, kind: str) -> Path:
    path = pytester.path / f"base-{kind}.conf"
    path.write_text(BASE_CONFIG[kind])
    return path


def test_every_kit_test_is_killed(pytester: pytest.Pytester) -> None:
    """A kit test that no broken driver fails cannot be trusted: every test of every suite
    (each parametrized case) is targeted by at least one zoo driver."""
    missing = {}
    for kind in REFERENCE:
        tests = _collected(pytester, kind)
        assert tests, f"no test collected for {kind}"
        targeted = {node for e in ZOO if e.family == kind for node in e.kills}
        if tests - targeted:
            missing[kind] = sorted(tests - targeted)
        unknown = targeted - tests
        assert not unknown, f"zoo entries target tests {kind} does not have: {sorted(unknown)}"
    assert not missing, f"kit tests no broken driver fails: {missing}"


def test_every_capability_is_tested_both_ways() -> None:
    """For every capability of every family: a driver declaring it that is broken (fail) and
    one declaring it unsupported that works (unexpected success)."""
    missing = []
    for kind in families.kinds():
        for cap in kind.contract().capabilities:
            ways = {e.outcome for e in ZOO if e.family == kind.name and e.capability == cap}
            if ways != {"fail", "unexpected-success"}:
                missing.append(f"{kind.name}:{cap} ({sorted(ways)})")
    assert not missing, f"capabilities not tested both ways: {missing}"


def test_kill_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    """Broken drivers caught / total (of those run in this session), reported."""
    if len(_caught) < len(ZOO):
        pytest.skip(f"only {len(_caught)} of {len(ZOO)} zoo drivers ran in this session")
    caught = sum(_caught.values())
    line = f"conformance kit kill ratio: {caught}/{len(ZOO)} broken drivers caught"
    with capsys.disabled():  # shown in the run's output, whatever the capture mode
        print(f"\n{line}")
    out = os.environ.get("STACKCORE_KILL_RATIO_FILE")
    if out:
        Path(out).write_text(json.dumps({"caught": caught, "total": len(ZOO),
                                         "missed": sorted(k for k, v in _caught.items()
                                                          if not v)}) + "\n")
    assert caught == len(ZOO), line


# --- the kit's own rules ----------------------------------------------------------------------

KIT_RULES = """
import os
from typing import ClassVar
from stackcore.volume.fake import FakeVolumeDriver
from tests.kit.compute import HonestNoPause  # noqa: F401


class NoDataHere(FakeVolumeDriver):
    '''The host cannot offer data access (a missing kernel feature).'''
    def unavailable_features(self):
        return {"data": "this kernel lacks the block layer the kit reads through"}


class LeakyAndUnsupported(FakeVolumeDriver):
    '''Declares multiattach unsupported; its multiattach path fails, and leaks.'''
    capabilities: ClassVar[dict] = {**FakeVolumeDriver.capabilities, "multiattach": False}
    def initialize_connection(self, volume, connector):
        if connector.get("host") == "conformance-host-2":
            self._make_file("leaked-" + volume.id, 1)
            raise RuntimeError("one host only")
        return super().initialize_connection(volume, connector)

    def get_volume_stats(self, refresh=False):
        report = super().get_volume_stats(refresh)
        report["multiattach"] = False
        for pool in report["pools"]:
            pool["multiattach"] = False
        return report
"""


@pytest.fixture
def kit_rules(pytester: pytest.Pytester) -> Iterator[None]:
    """Three more drivers, registered like the zoo's."""
    root = pytester.path / "rules-site"
    info = root / "kit_rules-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kit-rules\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[stackcore.compute.drivers]\nhonest = kit_rules:HonestNoPause\n"
        "[stackcore.volume.drivers]\nnodata = kit_rules:NoDataHere\n"
        "leaky = kit_rules:LeakyAndUnsupported\n")
    (root / "kit_rules.py").write_text(KIT_RULES)
    sys.path.insert(0, str(root))
    _forget()
    yield
    sys.path.remove(str(root))
    sys.modules.pop("kit_rules", None)
    _forget()


def test_an_honest_unsupported_capability_is_reported_unsupported(
        pytester: pytest.Pytester, kit_rules: None) -> None:
    outcome, doc = run_kit(pytester, "compute", "honest")
    assert outcome.ret == 0, outcome.outlines[-5:]
    assert doc is not None
    assert doc["features"]["pause"]["result"] == "unsupported"
    assert doc["features"]["pause"]["declared"] is False
    records = list(doc["features"]["pause"]["tests"].values())
    assert records, doc["features"]["pause"]
    for record in records:  # every pause test of the kit, each refused by the base class
        assert "CapabilityNotSupported" in record["message"], record
    assert doc["features"]["lifecycle"]["result"] == "pass"


def test_an_unavailable_feature_is_a_visible_skip_never_a_pass(
        pytester: pytest.Pytester, kit_rules: None) -> None:
    """Defect 6: size checks were dropped silently inside tests counted as passes."""
    outcome, doc = run_kit(pytester, "volume", "nodata", "", (), "-rs")
    assert outcome.ret == 0
    assert doc is not None
    data = doc["features"]["data"]
    assert data["result"] == "skip", data
    assert data["reasons"] == ["data unavailable on this host: this kernel lacks the block "
                               "layer the kit reads through"], data["reasons"]
    assert set(data["counts"]) == {"skip"}, data["counts"]
    sizes = [t for n, t in doc["features"]["data"]["tests"].items() if "size_is_seen" in n]
    assert sizes and all(t["outcome"] == "skip" for t in sizes), sizes
    outcome.stdout.fnmatch_lines(["*data unavailable on this host*"])


def test_a_leak_fails_the_test_it_belongs_to_even_when_the_capability_is_unsupported(
        pytester: pytest.Pytester, kit_rules: None) -> None:
    """Defect 3: leaks found at teardown were not recorded; an expected failure must not
    hide one either."""
    node = "TestVolumeCapabilities::test_two_hosts_attached_at_once"
    _outcome, doc = run_kit(pytester, "volume", "leaky", "", (node,))
    record = _record(doc, node)
    assert record is not None
    assert record["outcome"] == "fail", record
    assert "after the test (capability declared unsupported)" in record["message"], record
    assert "backend objects left after the test's deletes" in record["message"], record
    assert "leaked-" in record["message"], record
    assert doc is not None and doc["features"]["multiattach"]["result"] == "fail"


def test_a_fixture_teardown_error_is_recorded_against_its_test(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_teardown="""
        import pytest

        @pytest.fixture
        def breaks_at_teardown():
            yield
            raise RuntimeError("the backend connection could not be closed")

        @pytest.mark.family("compute")
        @pytest.mark.feature("lifecycle")
        def test_body_passes(breaks_at_teardown):
            pass
    """)
    results = pytester.path / "r.json"
    outcome = pytester.runpytest_inprocess("--stackcore-driver", "compute:fake",
                                           "--stackcore-results", str(results), *QUIET)
    assert outcome.ret != 0
    doc = json.loads(results.read_text())
    assert doc["features"]["lifecycle"]["result"] == "fail"
    (record,) = doc["features"]["lifecycle"]["tests"].values()
    assert record["phase"] == "teardown", record
    assert "the backend connection could not be closed" in record["message"], record


def test_messages_carry_values_without_assertion_rewriting(
        pytester: pytest.Pytester, zoo_installed: None) -> None:
    """Defect 2: with plain asserts (other runners) the messages still say expected/got."""
    node = "TestComputeLifecycle::test_power_off_and_on"
    _outcome, doc = run_kit(pytester, "compute", "zoo-power-off-noop", "", (node,),
                           "--assert=plain")
    record = _record(doc, node)
    assert record is not None and record["outcome"] == "fail"
    assert "power state after power_off(): expected SHUTDOWN, got RUNNING" in record["message"]


@pytest.mark.parametrize(("config", "named"), [
    ("[backends]\nvolume_driver = fake\n",
     "section [backends] in {path} (did you mean 'backend'?)"),
    ("[backend]\nvolume_driver = fake\nfake_pool = a,b\n",
     "option [backend] fake_pool in {path} (did you mean 'fake_pools'?)"),
])
def test_unknown_config_sections_and_options_are_errors_naming_them(
        pytester: pytest.Pytester, config: str, named: str) -> None:
    """Defect 8: a wrong section or a misspelt option was silently ignored."""
    path = pytester.path / "wrong.conf"
    path.write_text(config)
    outcome = pytester.runpytest_inprocess(
        _suite_file("volume"), "--stackcore-driver", "volume:fake", "--stackcore-config",
        str(path), *QUIET)
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    text = "\n".join(outcome.errlines)
    assert "ConfigError: configuration for volume:fake names what neither stackcore nor the " \
           "driver knows" in text, text
    assert named.format(path=path) in text, text


def test_a_broken_contract_is_refused_with_every_problem(pytester: pytest.Pytester) -> None:
    pytester.syspathinsert()
    pytester.makepyfile(broken_driver="""
        from stackcore.compute.fake import FakeHypervisorDriver

        class Broken(FakeHypervisorDriver):
            VERSION = ""
            def spawn(self, instance, image):
                pass
    """)
    root = pytester.path / "broken-site" / "broken_drivers-1.0.dist-info"
    root.mkdir(parents=True)
    (root / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-drivers\nVersion: 1.0\n")
    (root / "entry_points.txt").write_text("[stackcore.compute.drivers]\n"
                                           "broken = broken_driver:Broken\n")
    sys.path.insert(0, str(root.parent))
    _forget()
    try:
        outcome = pytester.runpytest_inprocess(_suite_file("compute"), "--stackcore-driver",
                                               "compute:broken", *QUIET)
    finally:
        sys.path.remove(str(root.parent))
        _forget()
    text = "\n".join(outcome.errlines)
    assert outcome.ret == pytest.ExitCode.USAGE_ERROR
    assert "DriverContractError" in text and "broken-drivers 1.0" in text, text
    assert "spawn(): missing parameter 'network_info'" in text, text
    assert "VERSION is missing" in text, text


def test_a_kit_run_leaves_no_temporary_directory(pytester: pytest.Pytester) -> None:
    """Defect 9: every run left a /tmp/stackcore-conformance-* directory."""
    import glob
    import tempfile

    pattern = os.path.join(tempfile.gettempdir(), "stackcore-conformance-*")
    before = set(glob.glob(pattern))
    outcome, _ = run_kit(pytester, "volume", "fake", "",
                         ("TestVolumeLifecycle::test_create_delete_idempotent",))
    assert outcome.ret == 0
    assert set(glob.glob(pattern)) - before == set()


def test_result_document_says_what_ran(pytester: pytest.Pytester) -> None:
    outcome, doc = run_kit(pytester, "compute", "fake", "",
                           ("TestComputeLifecycle::test_spawn_runs_and_lists",),
                           "--stackcore-run", "ci-1234")
    assert outcome.ret == 0 and doc is not None
    assert doc["run"] == "ci-1234" and doc["driver"] == "fake" and doc["summary"] == {"pass": 1}
    assert doc["distribution"] == "stackcore-framework"
