"""Virtual Fibre Channel fabric: virtual SANs, vHBAs with WWPN sets A/B, zoning, masking."""

from .model import (
    MAX_VHBAS_PER_VM,
    Fabric,
    FabricError,
    VHba,
    VirtualSan,
    Zone,
    format_wwn,
    initiator_name,
    parse_wwn,
    wwpn_of,
)

__all__ = [
    "MAX_VHBAS_PER_VM",
    "Fabric",
    "FabricError",
    "VHba",
    "VirtualSan",
    "Zone",
    "format_wwn",
    "initiator_name",
    "parse_wwn",
    "wwpn_of",
]
