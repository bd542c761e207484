"""Runs the shipped image store suite (``--stackcore-driver image.store:file`` ...;
``stackcore conformance --family image`` does it for every installed store)."""

from stackcore.testing.suites.image_store import *  # noqa: F403
