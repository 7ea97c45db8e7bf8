"""iSCSI transport (RFC 7143): wire PDUs, sans-IO login and connection cores, trio server."""
