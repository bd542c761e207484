"""The ``[libvirt]`` options of the libvirt hypervisor driver."""

from __future__ import annotations

from collections.abc import Sequence

from oslo_config import cfg

GROUP = "libvirt"

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "connection_uri",
        default="qemu:///system",
        help="libvirt connection URI. 'test:///default' is libvirt's in-process test driver "
        "(no daemon, no real disks or devices: used by the fast conformance run).",
    ),
    cfg.StrOpt(
        "virt_type",
        default="kvm",
        choices=[("kvm", "hardware virtualisation (/dev/kvm)"), ("qemu", "TCG emulation")],
        help="Domain type for QEMU connections. Ignored for the test driver.",
    ),
    cfg.StrOpt(
        "instances_path",
        help="Directory holding one sub-directory per instance (its qcow2 overlay and console "
        "log). Unset: <state_path>/instances.",
    ),
    cfg.StrOpt(
        "machine_type",
        default="q35",
        help="QEMU machine type. q35 plus pcie-root-port controllers is what makes live PCI "
        "(virtio) attach work; on i440fx a guest without an OS cannot take hotplugged PCI devices.",
    ),
    cfg.StrOpt(
        "cpu_mode",
        default="none",
        choices=[
            ("none", "QEMU's default CPU model"),
            ("host-model", "a named model close to the host CPU"),
            ("host-passthrough", "the host CPU as is (kvm only)"),
        ],
        help="Guest CPU. 'none' is the default because nested KVM (a VM running KVM) often "
        "refuses host-passthrough guests (QEMU aborts setting MSRs the outer hypervisor hides).",
    ),
    cfg.IntOpt(
        "pcie_root_ports",
        default=8,
        min=0,
        max=30,
        help="Extra pcie-root-port controllers added to q35 domains: one per PCI device "
        "(virtio disk or NIC) that may be hot-added while the domain runs.",
    ),
    cfg.IntOpt(
        "connection_retries",
        default=5,
        min=0,
        help="Extra attempts to open the libvirt connection before giving up with "
        "BackendUnavailable (the daemon may be restarting).",
    ),
    cfg.FloatOpt(
        "connection_retry_interval",
        default=1.0,
        min=0.0,
        help="Seconds before the first reconnect attempt; doubled after each failed attempt.",
    ),
    cfg.FloatOpt(
        "connection_retry_max_interval",
        default=30.0,
        min=0.0,
        help="Upper bound of the reconnect back-off, in seconds.",
    ),
    cfg.IntOpt(
        "soft_reboot_timeout",
        default=60,
        min=0,
        help="Seconds a SOFT reboot waits for the guest to shut down before falling back to a "
        "HARD reboot (power cycle).",
    ),
    cfg.IntOpt(
        "shutdown_timeout",
        default=60,
        min=0,
        help="Seconds a resize or cold migration waits for the guest to shut down cleanly "
        "before it is powered off hard (Nova's [DEFAULT] shutdown_timeout).",
    ),
    cfg.IntOpt(
        "device_detach_timeout",
        default=20,
        min=1,
        help="Seconds to wait for a running guest to release a detached disk or NIC.",
    ),
    cfg.StrOpt(
        "images_type",
        default="qcow2",
        choices=[
            ("qcow2", "a qcow2 overlay in instances_path backed by the host's image-cache copy"),
            ("rbd", "an RBD image <uuid>_disk in images_rbd_pool: a copy-on-write clone of a "
             "raw image of the rbd image store of the same cluster, else an import"),
        ],
        help="Where instances' root disks live (Nova's [libvirt] images_type). Checked at "
        "start-up for rbd: the cluster must answer and images_rbd_pool exist.",
    ),
    cfg.StrOpt(
        "images_rbd_pool",
        default="rbd",
        help="RADOS pool of the root disks when images_type = rbd.",
    ),
    cfg.StrOpt(
        "images_rbd_ceph_conf",
        default="",
        help="ceph.conf of the cluster of the root disks ('' = librados's default search).",
    ),
    cfg.StrOpt(
        "rbd_user",
        help="Ceph client id (cephx user) for the root disks; unset: librados's default.",
    ),
    cfg.StrOpt(
        "rbd_secret_uuid",
        help="uuid of the libvirt secret (usage type ceph) holding rbd_user's key, defined "
        "by the operator on every compute host (as for Nova); the domain's RBD disk "
        "authenticates through it. Unset: QEMU connects without cephx.",
    ),
    cfg.IntOpt(
        "rbd_connect_timeout",
        default=5,
        min=0,
        help="Seconds to reach the Ceph cluster (and per monitor/OSD operation) for root "
        "disks; 0: librados's defaults (which wait indefinitely).",
    ),
    cfg.StrOpt(
        "live_migration_inbound_addr",
        help="Address other compute hosts send a live-migrating guest's memory and disks to "
        "(QEMU's migration stream and the NBD server of a block migration listen on it). "
        "Unset: [compute] my_ip.",
    ),
    cfg.StrOpt(
        "live_migration_connection_uri",
        help="libvirt URI another host's compute service opens to reach this host's libvirtd "
        "for a live migration (the migration is driven by the source's compute service, "
        "talking to both daemons), e.g. qemu+tcp://kvm-2/system or qemu+ssh://kvm-2/system. "
        "Unset: connection_uri (right when the compute services share this machine).",
    ),
    cfg.IntOpt(
        "live_migration_downtime",
        default=500,
        min=100,
        help="Longest pause (ms) of the guest QEMU may take to switch a live migration over "
        "(it copies the last dirty memory while the guest is paused). Nova's default.",
    ),
    cfg.IntOpt(
        "live_migration_bandwidth",
        default=0,
        min=0,
        help="Most MiB/s a live migration may use; 0: as much as the link gives.",
    ),
    cfg.IntOpt(
        "live_migration_completion_timeout",
        default=800,
        min=0,
        help="Seconds per GiB of guest memory (and of a block migration's local disks) a "
        "live migration may take before it is aborted (the guest keeps running on the "
        "source); 0: no limit. Nova's default.",
    ),
    cfg.BoolOpt(
        "live_migration_permit_auto_converge",
        default=False,
        help="Let QEMU slow a guest's vCPUs down when its memory changes faster than it is "
        "copied, so that the migration can end.",
    ),
    cfg.IntOpt(
        "console_log_max_bytes",
        default=100 * 1024,
        min=1,
        help="get_console_output returns at most the last this many bytes of the log.",
    ),
]


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    """The ``oslo.config.opts`` hook (``stackcore_drivers.libvirt``): sample config and docs."""
    return [(GROUP, OPTS)]
