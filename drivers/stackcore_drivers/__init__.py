"""stackcore's backend drivers: one package per backend, reached only through entry points.

Nothing in the core (``stackcore``) imports this package; each driver is registered in
``setup.cfg`` under its family's entry-point namespace, exactly as a third-party package would.
"""



def _find() -> str:
    # from git at build time (setuptools-scm writes _version.py; see stackcore.version)
    try:
        from stackcore_drivers._version import version

        return str(version)
    except ImportError:
        pass
    import importlib.metadata

    try:
        return importlib.metadata.version("stackcore-drivers")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _find()
