"""An example third-party hypervisor driver for stackcore."""
