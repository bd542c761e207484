"""The L3 agent (``stackcore-l3-agent``): routers and floating IPs in network namespaces."""
