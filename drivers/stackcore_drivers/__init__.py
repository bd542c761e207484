"""stackcore's backend drivers: one package per backend, reached only through entry points.

Nothing in the core (``stackcore``) imports this package; each driver is registered in
``setup.cfg`` under its family's entry-point namespace, exactly as a third-party package would.
"""

__version__ = "0.1.0"
