"""A volume service killed (SIGKILL) in the middle of a backup, for real: the service is a
process of its own over RabbitMQ and PostgreSQL, the backup is stopped half-way inside the
volume driver's copy (the fake driver's ``fake_hang_on``: the staged file half made), the
process is killed there, and the restarted service settles everything - the backup ``error``
with a fault saying it was interrupted, the volume back to ``available``, no staging file and
nothing of the backup on the target - then takes a new backup of the same volume."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import stackcore
from tests.conftest import wait_until
from tests.functional.reliability.services import ServiceProcess, write_config

pytestmark = [pytest.mark.real, pytest.mark.postgres, pytest.mark.rabbit]


def _config(tmp_path: Path, pg_url: str, rabbit_url: str, hang: bool) -> str:
    return write_config(tmp_path / ("hang.conf" if hang else "stackcore.conf"), {
        "DEFAULT": {"transport_url": rabbit_url, "state_path": tmp_path / "state",
                    "report_interval": 1, "service_down_time": 5},
        "database": {"connection": pg_url},
        "backup": {"backup_driver": "posix", "backup_staging_dir": tmp_path / "staging"},
        "backup_posix": {"backup_posix_path": tmp_path / "backups"},
        "fake": {"fake_hang_on": "copy_volume_to_image" if hang else ""},
    })


def _files(root: Path) -> list[str]:
    """Every file under ``root`` (the staging directory has one folder per backend)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_service_killed_mid_backup_settles_it_when_it_starts_again(
        tmp_path: Path, pg_url: str, rabbit_url: str) -> None:
    hanging = _config(tmp_path, pg_url, rabbit_url, hang=True)
    normal = _config(tmp_path, pg_url, rabbit_url, hang=False)
    log = tmp_path / "volume.log"
    service = ServiceProcess("volume", hanging, log)
    api = stackcore.Cloud([normal], services=())
    try:
        service.start()
        volume = api.volume.create(1, wait=True)
        marker = tmp_path / "state" / "fake-volumes" / "fake" / "hung-copy_volume_to_image"
        backup = api.volume.create_backup(volume.id, wait=False)
        wait_until(marker.exists, 60, f"the backup to stop half-way ({marker})")
        staged = _files(tmp_path / "staging")
        assert [Path(f).name for f in staged] == [f"backup-{backup.id}.raw"], staged
        service.kill()
        # what the crash left: both transient
        left = (api.volume.get_backup(backup.id).status, api.volume.get(volume.id).status)
        assert left == ("creating", "backing-up"), left

        service.config = normal
        restarted = time.monotonic()
        service.start()
        settled = wait_until(
            lambda: (b := api.volume.get_backup(backup.id)).status != "creating" and b, 60,
            "the interrupted backup settled")
        recovery = time.monotonic() - restarted
        print(f"backup settled {recovery:.1f} s after the volume service was started again")
        assert settled.status == "error" and settled.fault is not None and \
            "interrupted by a restart" in settled.fault.message, settled
        assert api.volume.get(volume.id).status == "available"
        assert _files(tmp_path / "staging") == [], "a staging file outlived the restart"
        assert [n for n in _files(tmp_path / "backups") if backup.id in n] == [], \
            "the interrupted backup left data on the target"

        again = api.volume.create_backup(volume.id, wait=True)
        assert (again.status, api.volume.get(volume.id).status) == ("available", "available"),\
            again
    finally:
        service.stop()
        api.close()
        if service.proc is not None and service.proc.returncode not in (0, -9, None):
            print(service.log_tail())
