"""The stackcore command."""

from __future__ import annotations

import json

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
