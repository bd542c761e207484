"""Conformance suites, one module per family. Import one with ``from ... import *``."""
