"""The compute family: hypervisor driver contract, compute manager, compute API.

* :mod:`stackcore.compute.driver` - the contract (:class:`HypervisorDriver`, ``CONTRACT``).
* :mod:`stackcore.compute.stats` - the stats schema every driver report is checked against.
* :mod:`stackcore.compute.manager` - the per-host manager.
* :mod:`stackcore.compute.api` - what ``cloud.compute`` offers callers.
* :mod:`stackcore.compute.fake` - the in-memory reference driver.
"""
