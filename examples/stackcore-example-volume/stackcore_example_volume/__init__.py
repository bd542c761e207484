"""An example third-party volume driver for stackcore."""
