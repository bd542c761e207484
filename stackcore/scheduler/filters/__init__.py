"""Scheduler filters: the contract (:mod:`.base`), compute host filters (:mod:`.compute`) and
volume pool filters (:mod:`.volume`)."""
