"""The stackcore command."""

from __future__ import annotations

import json
import os

from stackcore.cli.main import main


def test_drivers_json_lists_fake_as_contract_ok(capsys) -> None:
    main(["drivers", "--format", "json", "--family", "compute"])
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    fake = rows["fake"]
    assert fake["contract"] == "ok" and fake["problems"] == []
    assert fake["distribution"] == "stackcore-framework"
    assert fake["driver_version"] == "1.0"
    assert fake["capabilities"]["pause"] is True


def test_drivers_reports_broken_plugins_and_fails(capsys, installed_plugins) -> None:
    installed_plugins("junk-drivers", {"stackcore.compute.drivers": {"junk": "nowhere:X"}})
    assert main(["drivers", "--family", "compute"]) == 1
    out = capsys.readouterr().out
    junk = next(line for line in out.splitlines() if line.startswith("compute  junk"))
    assert junk.split()[:3] == ["compute", "junk", "broken"], junk
    assert "ModuleNotFoundError" in out


def test_matrix_joins_declarations_with_results(capsys, tmp_path) -> None:
    (tmp_path / "compute-fake.json").write_text(json.dumps({
        "family": "compute", "driver": "fake",
        "features": {"pause": {"result": "pass"}, "suspend": {"result": "fail"},
                     "lifecycle": {"result": "pass"}}}))
    assert main(["matrix", "--results", str(tmp_path), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["driver"]: r for r in doc["families"]["compute"]}
    cells = {c: v["result"] for c, v in rows["fake"]["cells"].items()}
    assert cells["pause"] == "pass" and cells["suspend"] == "fail"
    assert cells["snapshot"] == "declared" and cells["contract"] == "ok"
    assert cells["lifecycle"] == "pass"


def test_errors_are_one_clear_line(capsys) -> None:
    assert main(["drivers", "--family", "hypervisors"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["stackcore: ConfigError: unknown plugin family 'hypervisors' "
                   f"(known: {err[0].split('(known: ')[1]}"]
    assert "compute" in err[0]


def test_demo_on_the_fakes(capsys) -> None:
    assert main(["demo", "--fake", "--hosts", "2"]) == 0
    out = capsys.readouterr().out
    assert "demo-1: ACTIVE on compute-" in out and "demo-2: ACTIVE on compute-" in out
    assert "attaching the volume to demo-1 ... done" in out
    assert "vxlan 1-1000: 1 allocated, 999 free" in out
    assert "deleting the network ... done" in out
    assert "stackcore demo: done" in out


NEEDS_LIB = """
from typing import ClassVar
from stackcore.compute.fake import FakeHypervisorDriver

class NeedsLib(FakeHypervisorDriver):
    REQUIRES: ClassVar[dict] = {"stackcore_absent_lib": "pip install stackcore-absent-lib"}
"""


def test_drivers_table_columns_are_aligned(capsys) -> None:
    assert main(["drivers"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()
             and not line.startswith("    ")]
    header = lines[0]
    starts = [header.index(word) for word in ("NAME", "STATUS", "DISTRIBUTION",
                                              "CAPABILITIES")]
    for line in lines[1:]:
        for start in starts:
            assert line[start - 2:start] == "  " and line[start] != " ", (line, start)


def test_a_plugin_missing_its_backend_library_is_unavailable_not_broken(
        capsys, installed_plugins) -> None:
    installed_plugins("lib-drivers", {"stackcore.compute.drivers": {"needslib": "needs_lib1:NeedsLib"}},
                      {"needs_lib1": NEEDS_LIB})
    assert main(["drivers", "--family", "compute"]) == 0  # unavailable is not a failure
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("compute  needslib"))
    assert row.split()[:3] == ["compute", "needslib", "unavailable"], row
    assert ("    unavailable: needs stackcore_absent_lib (not installed); install: pip install "
            "stackcore-absent-lib") in out
    assert "does not meet" not in out
    main(["drivers", "--family", "compute", "--format", "json"])
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert (rows["needslib"]["status"], rows["needslib"]["hint"]) == (
        "unavailable", "pip install stackcore-absent-lib")
    main(["matrix", "--results", "/nonexistent"])
    text = capsys.readouterr().out
    assert "needslib: unavailable - needs stackcore_absent_lib (not installed); install: pip " \
           "install stackcore-absent-lib" in text


def test_demo_says_unavailable_with_the_hint_not_a_cut_contract_line(installed_plugins) -> None:
    from stackcore import demo

    installed_plugins("lib-drivers", {"stackcore.compute.drivers": {"needslib": "needs_lib2:NeedsLib"}},
                      {"needs_lib2": NEEDS_LIB})
    assert demo._plugin_problem("compute", "needslib") == (
        "unavailable: needs stackcore_absent_lib (pip install stackcore-absent-lib)")
    assert demo._plugin_problem("compute", "fake") is None


def test_matrix_shows_every_outcome_with_reasons(capsys, tmp_path) -> None:
    (tmp_path / "compute-fake.json").write_text(json.dumps({
        "family": "compute", "driver": "fake", "run": "ci-7",
        "features": {
            "lifecycle": {"result": "pass", "reasons": []},
            "stats": {"result": "fail", "reasons": ["teardown: the backend went away"]},
            "pause": {"result": "skip", "reasons": ["pause unavailable on this backend: x"]},
            "suspend": {"result": "unexpected-success",
                        "reasons": ["[XPASS(strict)] capability 'suspend' is declared "
                                    "unsupported"]},
            "snapshot": {"result": "unsupported", "reasons": []}}}))
    (tmp_path / "run.json").write_text(json.dumps({
        "run": "ci-7", "commit": "0123456789abcdef", "host": "ci", "finished_at": "now"}))
    assert main(["matrix", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Results of conformance run ci-7 of commit 0123456789ab, finished "
                          "now on ci.")
    compute = out[out.index("[compute]"):]
    row = next(line for line in compute.splitlines() if line.startswith("fake "))
    for label in ("pass", "FAIL [1]", "skip [2]", "UNEXPECTED SUCCESS [3]", "unsupported"):
        assert label in row, row
    assert "  [1] teardown: the backend went away" in compute
    assert "  [2] pause unavailable on this backend: x" in compute
    assert main(["matrix", "--results", str(tmp_path), "--format", "rst"]) == 0
    rst = capsys.readouterr().out
    assert "conformance run ci-7" in rst and ".. list-table::" in rst


def test_conformance_require_config_runs_only_configured_drivers(tmp_path, monkeypatch) -> None:
    import glob
    import tempfile

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "compute-fake.conf").write_text("[fake_hypervisor]\nvcpus = 4\n")
    results = tmp_path / "results"
    # a temporary directory of this test's own: another run on the machine (a second
    # checkout's tests) may make and remove its own stackcore-conformance-* meanwhile
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    pattern = os.path.join(tempfile.gettempdir(), "stackcore-conformance-*")
    before = set(glob.glob(pattern))
    assert main(["conformance", "--family", "compute", "--config-dir", str(configs),
                 "--require-config", "--results", str(results), "--run", "t-1"]) == 0
    assert sorted(p.name for p in results.iterdir()) == ["compute-fake.json", "run.json"]
    run = json.loads((results / "run.json").read_text())
    assert run["run"] == "t-1" and run["drivers"] == {"compute:fake": "pass"}
    assert run["not_run"] == {
        "compute:libvirt": f"no compute-libvirt.conf in {configs}; --require-config"}
    assert json.loads((results / "compute-fake.json").read_text())["run"] == "t-1"
    assert set(glob.glob(pattern)) - before == set()  # no temporary directory left


def test_conformance_runs_backend_free_suites_in_shared_workers(tmp_path, capsys) -> None:
    results = tmp_path / "results"
    assert main(["conformance", "--family", "scheduler.volume_weighers", "--results",
                 str(results), "--jobs", "2", "--run", "t-2"]) == 0
    out = capsys.readouterr().out
    names = ("AllocatedCapacityWeigher", "CapacityWeigher", "VolumeNumberWeigher")
    for name in names:
        assert (results / f"scheduler.volume_weighers-{name}.json").is_file(), name
    assert "batch 0)" in out and "batch 1)" in out, out
    run = json.loads((results / "run.json").read_text())
    assert run["drivers"] == {f"scheduler.volume_weighers:{n}": "pass" for n in names}
