"""The compute metadata service: what a guest reads at ``http://169.254.169.254`` (cloud-init,
Ignition...), Nova-compatible.

* :mod:`.content` - the trees (OpenStack ``/openstack/<version>/...`` and EC2
  ``/<version>/meta-data/...``) built by pure functions from what the service looked up;
* :mod:`.service` - the HTTP server, a *named* service of the compute family (it listens on a
  port, so only a process that names it runs it: ``Cloud(services=[..., "metadata"])`` or
  ``stackcore service metadata``);
* :mod:`.opts` - its ``[metadata]`` options.

Only requests signed by a metadata proxy are answered (Nova's ``X-Instance-ID``,
``X-Tenant-ID`` and ``X-Instance-ID-Signature`` headers, an HMAC-SHA256 of the instance id
under ``[metadata] metadata_proxy_shared_secret``); unlike Nova, the service refuses to start
without that secret rather than answer unsigned requests.
"""
