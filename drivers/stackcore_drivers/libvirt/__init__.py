"""The libvirt hypervisor driver (KVM/QEMU through libvirt-python; ``test:///default`` for tests).

Modules, one job each:

* :mod:`.conf` - the ``[libvirt]`` options;
* :mod:`.connection` - one libvirt connection with reconnect-and-backoff, and the mapping of
  libvirt errors to stackcore exceptions;
* :mod:`.domain_xml` - domain XML built with :mod:`xml.etree.ElementTree` (never by string joining);
* :mod:`.volume` - Cinder-style ``connection_info`` (iscsi / nfs / rbd) -> a disk element and
  the libvirt secret it needs;
* :mod:`.vif` - port dicts (``ovs`` / ``bridge``) -> an interface element;
* :mod:`.images` - per-instance qcow2 overlays and snapshots (qemu-img, argument lists);
* :mod:`.host` - the host's stats report;
* :mod:`.driver` - :class:`~.driver.LibvirtDriver`, the contract implementation.
"""
