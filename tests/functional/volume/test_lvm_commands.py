"""The lvm driver's LVM commands per operation, in the full-kernel guest (device-mapper).

Every LVM command reads the volume group's metadata and, under QEMU TCG, costs about a
second: the driver's fixed cost over the raw command is its extra commands
(benchmarks/lvm_guest.py). A thin create, snapshot, clone or delete runs exactly its one
command; the probes the driver needs to tell a missing source from a real failure run only
after that command failed. And whatever the volume type says, a thick LV is never removed
unwiped, an origin with thick snapshots is refused, missing sources are NotFound with nothing
left behind. The commands really run (the spy only records them).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import stackcore_drivers.volume.lvm as lvm
from stackcore_drivers.volume.lvm import LvmDriver, has_device_mapper

from stackcore import exception
from stackcore.testing.harness import DriverUnderTest
from stackcore.volume.objects import Snapshot, Volume
from tests.conftest import backend_env

pytestmark = [pytest.mark.real, pytest.mark.guest("device-mapper: thin LVs and snapshots")]

THICK = {"provisioning:type": "thick"}
LVM_COMMANDS = {"lvs", "vgs", "pvs", "lvcreate", "lvremove", "lvextend", "lvchange"}


class Spy:
    """The LVM commands the driver ran (program and first arguments), in order."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def take(self) -> list[str]:
        taken = [" ".join(c[:2]) for c in self.commands if c[0] in LVM_COMMANDS]
        self.commands.clear()
        return taken


@pytest.fixture
def driver(tmp_path, monkeypatch) -> Iterator[tuple[LvmDriver, Spy]]:
    assert has_device_mapper(), "expected the guest's kernel, with device-mapper"
    vg = backend_env("STACKCORE_TEST_LVM_VG", "lvm")
    made = DriverUnderTest.from_spec("volume:lvm", [], [
        f"backend.volume_group={vg}", f"DEFAULT.state_path={tmp_path}"]).new("backend", "t@b")
    made.do_setup()
    assert isinstance(made, LvmDriver)
    before = set(made._lvs())
    spy = Spy()
    real = lvm.execute

    def recording(*cmd: str, **kwargs: object) -> tuple[str, str]:
        spy.commands.append(list(cmd))
        return real(*cmd, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lvm, "execute", recording)
    yield made, spy
    monkeypatch.setattr(lvm, "execute", real)
    assert set(made._lvs()) == before, "LVs left behind"


def test_thin_operations_run_one_lvm_command_each(driver) -> None:
    d, spy = driver
    volume, clone, bigger = Volume(str(uuid.uuid4()), 1), Volume(str(uuid.uuid4()), 1), \
        Volume(str(uuid.uuid4()), 2)
    snap = Snapshot(str(uuid.uuid4()), volume, 1)
    from_snap = Volume(str(uuid.uuid4()), 1)
    steps = [
        ("create_volume", lambda: d.create_volume(volume), ["lvcreate -n"]),
        ("create_snapshot", lambda: d.create_snapshot(snap), ["lvcreate -s"]),
        ("create_cloned_volume", lambda: d.create_cloned_volume(clone, volume),
         ["lvcreate -s"]),
        ("create_cloned_volume (larger)", lambda: d.create_cloned_volume(bigger, volume),
         ["lvcreate -s", "lvextend -L"]),
        ("create_volume_from_snapshot", lambda: d.create_volume_from_snapshot(from_snap, snap),
         ["lvcreate -s"]),
        ("delete_snapshot", lambda: d.delete_snapshot(snap), ["lvremove -f"]),
        *[(f"delete_volume {v.name}", lambda v=v: d.delete_volume(v), ["lvremove -f"])
          for v in (volume, clone, bigger, from_snap)],
    ]
    ran = {}
    for what, call, _ in steps:
        call()
        ran[what] = spy.take()
    assert ran == {what: expected for what, _, expected in steps}
    sizes = d._lvs()
    assert not [n for n in sizes if volume.id in n or snap.id in n], sizes
    spy.take()
    # deleting what is gone: the fast remove finds nothing, one lvs says it is gone
    d.delete_volume(volume)
    d.delete_snapshot(snap)
    assert spy.take() == ["lvremove -f", "lvs --noheadings"] * 2


def test_thin_clone_is_grown_to_its_size(driver) -> None:
    d, _ = driver
    volume, bigger = Volume(str(uuid.uuid4()), 1), Volume(str(uuid.uuid4()), 3)
    d.create_volume(volume)
    try:
        d.create_cloned_volume(bigger, volume)
        try:
            assert d._lvs()[bigger.name][0] == 3.0, d._lvs()
        finally:
            d.delete_volume(bigger)
    finally:
        d.delete_volume(volume)


def test_missing_sources_are_not_found_and_leave_nothing(driver) -> None:
    d, spy = driver
    ghost, target = Volume(str(uuid.uuid4()), 1), Volume(str(uuid.uuid4()), 1)
    snap = Snapshot(str(uuid.uuid4()), ghost, 1)
    for what, call in (("create_snapshot", lambda: d.create_snapshot(snap)),
                       ("create_cloned_volume", lambda: d.create_cloned_volume(target, ghost)),
                       ("create_volume_from_snapshot",
                        lambda: d.create_volume_from_snapshot(target, snap)),
                       ("extend_volume", lambda: d.extend_volume(ghost, 2))):
        with pytest.raises(exception.NotFound):
            call()
        assert [n for n in d._lvs() if ghost.id in n or target.id in n or snap.id in n] == [], \
            what
    spy.take()


def test_an_existing_name_is_a_conflict(driver) -> None:
    d, spy = driver
    volume = Volume(str(uuid.uuid4()), 1)
    d.create_volume(volume)
    try:
        with pytest.raises(exception.Conflict, match=volume.name):
            d.create_volume(volume)
    finally:
        d.delete_volume(volume)
    spy.take()


def test_a_thick_lv_typed_thin_is_still_wiped_and_its_snapshots_kept(driver) -> None:
    """The volume type says thin but the LV is thick (the type changed behind the driver's
    back): the thin fast paths fall back to the thick ones instead of removing unwiped data
    or an origin's snapshots."""
    d, spy = driver
    thick = Volume(str(uuid.uuid4()), 1, extra_specs=THICK)
    as_thin = Volume(thick.id, 1)
    snap = Snapshot(str(uuid.uuid4()), as_thin, 1)
    d.create_volume(thick)
    try:
        d.create_snapshot(snap)  # the thin snapshot is refused: a COW snapshot is made
        assert d._lvs()[f"_{snap.name}"][1][:1] == "s", d._lvs()
        with pytest.raises(exception.InvalidState):
            d.delete_volume(as_thin)
        assert thick.name in d._lvs()
        spy.take()
        d.delete_snapshot(snap)
        assert "blkdiscard" in [c[0] for c in spy.commands], spy.commands  # COW store zeroed
        spy.commands.clear()
        d.delete_volume(as_thin)
        assert "blkdiscard" in [c[0] for c in spy.commands], spy.commands  # its data zeroed
    finally:
        d.delete_snapshot(snap)
        d.delete_volume(thick)
