"""The DHCP agent (``stackcore-dhcp-agent``) and the ``dnsmasq`` DHCP driver."""
