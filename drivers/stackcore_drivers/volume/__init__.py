"""Volume drivers: ``lvm`` (iSCSI through tgt), ``nfs`` (qemu-img files), ``rbd`` (Ceph)."""
