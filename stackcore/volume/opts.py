"""Configuration of the volume service.

``[volume] enabled_backends`` names the backends this process serves; each has its own section
(named like the backend) holding :data:`BACKEND_OPTS` plus its driver's own options::

    [volume]
    enabled_backends = lvm-1, ceph

    [lvm-1]
    volume_driver = lvm
    volume_backend_name = LVM_iSCSI
    volume_group = stackcore-volumes

    [ceph]
    volume_driver = rbd
    rbd_pool = volumes
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from stackcore.volume.placement import opts as placement_opts

_MOSR_HELP = ("Thin over-subscription limit: a float >= 1.0, or 'auto' (derived from the "
              "provisioned/used ratio, Cinder's rule).")

VOLUME_OPTS = [
    cfg.ListOpt(
        "enabled_backends",
        default=["fake"],
        help="Backends this process runs a volume service for; each is a config section with "
        "volume_driver and the driver's options. Empty: no volume service here.",
    ),
    cfg.StrOpt("storage_availability_zone", default="nova",
               help="Availability zone of the volume backends here (per-backend: "
               "backend_availability_zone)."),
    cfg.StrOpt("default_volume_type", help="Volume type used when a request names none."),
    cfg.StrOpt("max_over_subscription_ratio", default="20.0", regex=r"^(auto|[0-9]+(\.[0-9]+)?)$",
               help=_MOSR_HELP + " Default for backends that do not set their own."),
    cfg.IntOpt("operation_timeout", default=600, min=1,
               help="Seconds cloud.volume calls with wait=True wait for a final state."),
    cfg.StrOpt("image_dir",
               help="Scratch directory where upload_to_image has the driver write the "
               "volume's temporary image file before it is streamed into the image store "
               "(removed afterwards; needs room for the volume). Unset: "
               "<state_path>/images."),
]

#: ``[backup]``: the backup driver of this host's volume services (its own options go in the
#: same group, registered when it loads; see :mod:`stackcore.volume.backup`).
BACKUP_OPTS = [
    cfg.StrOpt("backup_driver",
               help="Backup driver of the volume services of this process: an entry point "
               "name in stackcore.volume.backup_drivers (posix, ceph). Unset: no backups here."),
    cfg.StrOpt("backup_staging_dir",
               help="Local directory where a volume's data is staged as a raw file while it "
               "is backed up or restored (needs room for the largest volume). Unset: "
               "<state_path>/backup-staging."),
]

BACKEND_OPTS = [
    cfg.StrOpt("volume_driver", default="fake",
               help="Volume driver: an entry point name in stackcore.volume.drivers."),
    cfg.StrOpt("volume_backend_name",
               help="Backend name reported in stats and matched by the volume type extra spec "
               "volume_backend_name. Unset: the section name."),
    cfg.IntOpt("reserved_percentage", default=0, min=0, max=100,
               help="Share of the backend's total capacity kept free."),
    cfg.StrOpt("max_over_subscription_ratio", regex=r"^(auto|[0-9]+(\.[0-9]+)?)$",
               help=_MOSR_HELP + " Unset: [volume] max_over_subscription_ratio."),
    cfg.StrOpt("backend_availability_zone",
               help="Availability zone of this backend. Unset: [volume] "
               "storage_availability_zone."),
]



def mosr(conf: cfg.ConfigOpts, backend: str) -> float | str:
    """The configured over-subscription ratio of ``backend`` (float or ``"auto"``)."""
    value = conf[backend].max_over_subscription_ratio or conf.volume.max_over_subscription_ratio
    if value == "auto":
        return "auto"
    if float(value) < 1.0:
        from stackcore.exception import ConfigError

        raise ConfigError(f"[{backend}] max_over_subscription_ratio = {value!r} is invalid: "
                          "must be >= 1.0 or 'auto'", section=backend,
                          option="max_over_subscription_ratio")
    return float(value)


def list_opts() -> list[tuple[str, Any]]:
    """Every option group the volume family registers on a Cloud (backend sections are
    registered per enabled backend, see :mod:`stackcore.volume.backends`)."""
    return [("volume", VOLUME_OPTS), (placement_opts.GROUP, placement_opts.OPTS),
            ("backup", BACKUP_OPTS)]


def plugin_opts() -> list[tuple[str, Any]]:
    """A backend section's options with the fake driver's, for the sample config."""
    from stackcore.volume.fake import FakeVolumeDriver

    return [("<backend>", [*BACKEND_OPTS, *FakeVolumeDriver.get_driver_options()])]
