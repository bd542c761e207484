"""The conformance kit: a pytest plugin plus one suite per plugin family.

See :mod:`stackcore.testing.plugin` for how a driver package runs it, and
``stackcore.testing.suites.<family>`` for what each suite checks.
"""
