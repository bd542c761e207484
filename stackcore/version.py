"""The version of the stackcore core distribution."""

__version__ = "0.1.0"
