"""The ``oslo.config.opts`` hooks of the storage drivers, for ``oslo-config-generator`` and the
docs' configuration reference (``drivers/etc/oslo-config-generator/stackcore-drivers.conf``).

Each hook lists its options in the group a deployment sets them in:

* a **volume driver**'s options go in the section of each backend using it. That section's name
  is the deployment's choice (``[volume] enabled_backends = lvm-1, ceph``, then ``[lvm-1]``,
  ``[ceph]``), so the sample shows them in ``[<backend>]``, the placeholder the core's sample
  already uses for the common backend options (``volume_driver``, ``volume_backend_name``, ...).
  One namespace per driver: the sample's ``From stackcore_drivers.volume.lvm`` headers say which
  driver reads which option. The tgt iSCSI target's options are the LVM driver's (it is the one
  exporting through tgt), so they are listed with it.
* an **image store**'s options go in ``[image_store_<name>]`` (``[image] stores = rbd``), the
  group the image family registers them in, so the sample names the real section;
* a **backup driver**'s options go in ``[backup_<name>]`` (``[backup] backup_driver = ceph``),
  the group the volume family registers them in.

Only the drivers' own ``OPTS`` lists are imported here: the options are defined once, next to
the code reading them.
"""

from __future__ import annotations

from collections.abc import Sequence

from oslo_config import cfg

#: The sample's section for a volume backend's options (see the module docstring).
BACKEND_GROUP = "<backend>"
#: The group the image family registers the ``rbd`` store's options in (``image_store_<name>``).
RBD_STORE_GROUP = "image_store_rbd"

OptGroups = list[tuple[str, Sequence[cfg.Opt]]]


def lvm_opts() -> OptGroups:
    """The LVM volume driver's options (volume group, thin pool, wiping, tgt iSCSI target)."""
    from stackcore_drivers.volume import lvm

    return [(BACKEND_GROUP, list(lvm.OPTS))]


def nfs_opts() -> OptGroups:
    """The NFS volume driver's options (shares, access, mounts)."""
    from stackcore_drivers.volume import nfs

    return [(BACKEND_GROUP, list(nfs.OPTS))]


def rbd_volume_opts() -> OptGroups:
    """The Ceph RBD volume driver's options (pool, cephx user, clones, RADOS connection)."""
    from stackcore_drivers.volume import rbd

    return [(BACKEND_GROUP, list(rbd.OPTS))]


def rbd_store_opts() -> OptGroups:
    """The Ceph RBD image store's options."""
    from stackcore_drivers.image import rbd

    return [(RBD_STORE_GROUP, list(rbd.OPTS))]


def backup_posix_opts() -> OptGroups:
    """The posix backup driver's options (``[backup] backup_driver = posix``)."""
    from stackcore_drivers.backup import posix

    return [("backup_posix", list(posix.OPTS))]


def backup_ceph_opts() -> OptGroups:
    """The Ceph backup driver's options (``[backup] backup_driver = ceph``)."""
    from stackcore_drivers.backup import ceph

    return [("backup_ceph", list(ceph.OPTS))]
