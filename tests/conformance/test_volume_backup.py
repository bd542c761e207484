"""Runs the shipped volume backup suite (``--stackcore-driver volume.backup:posix`` ...;
``stackcore conformance --family volume.backup`` does it for every installed backup driver)."""

from stackcore.testing.suites.volume_backup import *  # noqa: F403
