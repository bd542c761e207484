"""An example third-party scheduler filter and weigher for stackcore."""
