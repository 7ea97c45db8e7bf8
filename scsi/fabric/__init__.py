"""Virtual Fibre Channel fabric: virtual SANs, vHBAs with WWPN sets A/B, zoning, masking."""
