"""The lvm driver's manage / unmanage (capability manage_existing), command line by command
line: LVM itself runs only in the full-kernel guest tier (its conformance suite covers the
behaviour there), so these tests fix what the driver asks LVM to do - argument lists, never
shell strings - and what it refuses before running anything."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg
from stackcore_drivers.volume import lvm

from stackcore import exception
from stackcore.volume import Volume
from stackcore.volume.opts import BACKEND_OPTS

GiB = 1024**3
VG = "stackcore-volumes"
VOLUME = Volume(id="0b5a6c2e-8f4e-4d55-9a43-5d1f4b0c7a11", size=2)


class FakeLvm:
    """Stands in for ``execute``: records each command (a tuple: argv) and answers ``lvs``
    from a table of LVs ``name -> (bytes, attributes)``; ``fail`` makes a command fail."""

    def __init__(self, lvs: dict[str, tuple[int, str]]) -> None:
        self.lvs = lvs
        self.commands: list[tuple[str, ...]] = []
        self.fail: str | None = None

    def __call__(self, *cmd: str, check_exit_code: Any = True, env: Any = None,
                 timeout: int = 600) -> tuple[str, str]:
        self.commands.append(cmd)
        if self.fail is not None and cmd[0] == self.fail:
            raise exception.DriverError(f"{cmd[0]} failed (exit 5): injected")
        if cmd[0] == "lvs":
            target = cmd[-1]
            if "/" in target:  # one LV: "size:attr", nothing (exit 5) when missing
                name = target.split("/", 1)[1]
                found = self.lvs.get(name)
                return ("" if found is None else f"  {found[0]}:{found[1]}\n"), ""
            return "".join(f"  {n}:{b}:{a}\n" for n, (b, a) in self.lvs.items()), ""
        if cmd[0] == "lvrename":
            _, _, old, new = cmd
            self.lvs[new] = self.lvs.pop(old)
        return "", ""


@pytest.fixture
def driver(tmp_path: Any) -> lvm.LvmDriver:
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.StrOpt("state_path", default=str(tmp_path)))
    conf.register_opts([*BACKEND_OPTS, *lvm.LvmDriver.get_driver_options()], group="lvm")
    conf([], project="stackcore-test")
    conf.set_override("volumes_dir", str(tmp_path / "volumes"), group="lvm")
    return lvm.LvmDriver(conf, "lvm", "host@lvm")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLvm:
    table = FakeLvm({"legacy": (GiB + 1, "-wi-a-----"),
                     "stackcore-thin-pool": (10 * GiB, "twi-aotz--"),
                     "busy": (GiB, "-wi-ao----"),
                     "origin": (GiB, "owi-a-s---"),
                     "_snapshot-1": (GiB, "swi-a-s---")})
    monkeypatch.setattr(lvm, "execute", table)
    return table


def test_size_is_read_in_bytes_and_rounded_up(driver: lvm.LvmDriver, fake: FakeLvm) -> None:
    assert driver.manage_existing_get_size(VOLUME, {"source-name": "legacy"}) == 2
    assert fake.commands == [("lvs", "--noheadings", "--units", "b", "--nosuffix",
                              "--separator", ":", "-o", "lv_size,lv_attr", f"{VG}/legacy")]


def test_manage_renames_in_the_vg_then_grows_to_the_volume_size(driver: lvm.LvmDriver,
                                                                 fake: FakeLvm) -> None:
    assert driver.manage_existing(VOLUME, {"source-name": "legacy"}) is None
    assert fake.commands[1:] == [
        ("lvrename", VG, "legacy", VOLUME.name),
        ("lvextend", "-L", "2g", f"{VG}/{VOLUME.name}"),
    ], fake.commands
    assert VOLUME.name in fake.lvs and "legacy" not in fake.lvs


def test_a_failed_grow_renames_the_lv_back(driver: lvm.LvmDriver, fake: FakeLvm) -> None:
    fake.fail = "lvextend"
    with pytest.raises(exception.DriverError, match="lvextend failed"):
        driver.manage_existing(VOLUME, {"source-name": "legacy"})
    assert fake.commands[-1] == ("lvrename", VG, VOLUME.name, "legacy"), fake.commands
    assert "legacy" in fake.lvs and VOLUME.name not in fake.lvs


@pytest.mark.parametrize(("name", "error", "says"), [
    ("nothing", exception.NotFound, "has no LV nothing"),
    ("busy", exception.Invalid, "in use"),
    ("origin", exception.Invalid, "has snapshots"),
    ("stackcore-thin-pool", exception.Invalid, "thin pool"),
    ("_snapshot-1", exception.Invalid, "own snapshots"),
    ("legacy; rm -rf /", exception.Invalid, "is not an LV name"),
    ("a$(id)", exception.Invalid, "is not an LV name"),
    ("-legacy", exception.Invalid, "not starting with '-'"),
    ("vg/legacy", exception.Invalid, "is not an LV name"),
])
def test_refusals_run_no_change(driver: lvm.LvmDriver, fake: FakeLvm, name: str,
                                error: type[Exception], says: str) -> None:
    before = dict(fake.lvs)
    with pytest.raises(error, match=says):
        driver.manage_existing(VOLUME, {"source-name": name})
    changing = [c for c in fake.commands if c[0] != "lvs"]
    assert changing == [], f"commands run for {name!r}: {changing}"
    assert fake.lvs == before


def test_malformed_references_are_invalid(driver: lvm.LvmDriver, fake: FakeLvm) -> None:
    for ref in ({"source-id": "legacy"}, {}, {"source-name": 5}):
        with pytest.raises(exception.Invalid, match="existing_ref"):
            driver.manage_existing_get_size(VOLUME, ref)  # type: ignore[arg-type]
    assert fake.commands == []


def test_unmanage_runs_nothing(driver: lvm.LvmDriver, fake: FakeLvm) -> None:
    driver.unmanage(VOLUME)
    assert fake.commands == []


def test_list_manageable_marks_what_is_not_safe(driver: lvm.LvmDriver, fake: FakeLvm) -> None:
    listed = {e["reference"]["source-name"]: (e["size"], e["safe_to_manage"])
              for e in driver.list_manageable_volumes()}
    assert listed == {"legacy": (2, True), "busy": (1, False), "origin": (1, False),
                      "_snapshot-1": (1, False)}, listed
    assert fake.commands == [("lvs", "--noheadings", "--units", "b", "--nosuffix",
                              "--separator", ":", "-o", "lv_name,lv_size,lv_attr", VG)]
