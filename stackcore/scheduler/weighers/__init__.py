"""Scheduler weighers: the contract (:mod:`.base`), compute host weighers (:mod:`.compute`) and
volume pool weighers (:mod:`.volume`)."""
