"""Virtual Fibre Channel fabric model: virtual SANs, vHBAs with WWPN sets A/B, zoning, LUN masking."""
