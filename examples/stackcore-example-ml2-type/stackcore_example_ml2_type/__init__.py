"""An example third-party ML2 type driver for stackcore."""
