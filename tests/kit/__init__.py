"""The zoo: deliberately broken drivers, one or more per conformance-kit test, for every family.

Each module holds the broken drivers of one family and a ``ZOO`` list of :class:`Broken`
entries saying which kit test(s) each one must fail and with which words.
``tests/unit/test_conformance_kit.py`` runs the kit on every one (the meta-test) and checks
that every kit test is failed by at least one of them.
"""
