"""The version of the stackcore core distribution.

Derived from git by setuptools-scm when the distribution is built or installed (also in
editable installs), and written to ``stackcore/_version.py``, which is not committed: a
hard-coded version drifts from the releases it claims to be. Reading the generated file costs
nothing at import time; the installed metadata is the fallback for an install whose build
left no file, and ``0+unknown`` says plainly that neither exists (a bare source tree on
``sys.path``).
"""

from __future__ import annotations


def _find() -> str:
    try:
        from stackcore._version import version

        return str(version)
    except ImportError:
        pass
    import importlib.metadata

    try:
        return importlib.metadata.version("stackcore-framework")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _find()
