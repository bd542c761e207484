"""An example third-party ML2 mechanism driver for stackcore."""
