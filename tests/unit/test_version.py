"""The version comes from git (setuptools-scm at build time), not from a hard-coded string."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
from pathlib import Path

import pytest
import stackcore_drivers
from packaging.version import Version

import stackcore

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("module", "distribution"), [
    (stackcore, "stackcore-framework"), (stackcore_drivers, "stackcore-drivers")])
def test_version_is_the_installed_distributions(module: object, distribution: str) -> None:
    version = module.__version__  # type: ignore[attr-defined]
    installed = importlib.metadata.version(distribution)
    assert version == installed, f"{module.__name__} says {version}, its metadata {installed}"  # type: ignore[attr-defined]
    parsed = Version(version)  # raises on anything that is not PEP 440
    assert parsed > Version("0"), f"{version!r}: no version was found at build time"


def test_version_names_a_commit_of_this_history() -> None:
    """Between tags the version is ``X.Y.Z.devN+g<commit>``: that commit must be HEAD or one
    of its ancestors (an install made before the latest commits is older, never foreign)."""
    assert shutil.which("git") and (REPO / ".git").exists(), "the tests run from a git checkout"
    local = Version(stackcore.__version__).local or ""
    commit = next((part[1:] for part in local.split(".") if part.startswith("g")), None)
    tagged = subprocess.run(["git", "-C", str(REPO), "describe", "--tags", "--exact-match"],
                            capture_output=True, text=True).returncode == 0
    if tagged and commit is None:
        return  # a release: the version is the tag itself
    assert commit, f"{stackcore.__version__!r} names no commit (expected +g<commit>)"
    result = subprocess.run(["git", "-C", str(REPO), "merge-base", "--is-ancestor", commit,
                             "HEAD"], capture_output=True, text=True)
    assert result.returncode == 0, (
        f"version {stackcore.__version__} names commit {commit}, which is not in this "
        f"checkout's history: {result.stderr.strip()}")
