"""The ``[rdma]`` configuration table.

```toml
[rdma]
listen = ["127.0.0.1:5445"]   # SMB Direct listeners; 5445 is SMB Direct's iWARP port
provider = "iwarp"            # "iwarp" (userspace, over TCP) or "pyverbs" (rdma-core device)
device = ""                   # pyverbs: device name (rxe0, siw0); empty = the first one
crc = true                    # iwarp: ask for MPA CRC32C (used anyway if the peer asks)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SMBDIRECT_IWARP_PORT = 5445
PROVIDERS = ("iwarp", "pyverbs")


class RdmaConfigError(ValueError):
    """The [rdma] table is wrong; the message says where."""


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """``"127.0.0.1:4455"`` / ``"[::1]:4455"`` / ``"127.0.0.1"`` -> (host, port).

    Raises ValueError naming what is wrong; the configuration readers (this one and
    ``vmstor.config``) add where in the file it was.
    """
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"bad address {text!r}: no host")
    try:
        p = int(port) if port else default_port
    except ValueError:
        raise ValueError(f"bad address {text!r}: port is not a number") from None
    if not 0 <= p <= 65535:
        raise ValueError(f"bad address {text!r}: port out of range")
    return host, p


def _hostport(text: str, where: str) -> tuple[str, int]:
    try:
        return parse_hostport(text, SMBDIRECT_IWARP_PORT)
    except ValueError as e:
        raise RdmaConfigError(f"{where}: {e}") from None


@dataclass(frozen=True)
class RdmaConfig:
    listen: tuple[tuple[str, int], ...] = ()
    provider: str = "iwarp"
    device: str = ""
    crc: bool = True

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str = "[rdma]") -> RdmaConfig:
        unknown = set(table) - {"listen", "provider", "device", "crc"}
        if unknown:
            raise RdmaConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        listen = table.get("listen", [])
        if isinstance(listen, str):
            listen = [listen]
        if not isinstance(listen, list) or not all(isinstance(v, str) for v in listen):
            raise RdmaConfigError(f'{where}: listen must be a list of "host:port" strings')
        provider = table.get("provider", "iwarp")
        if provider not in PROVIDERS:
            raise RdmaConfigError(f"{where}: provider must be one of {', '.join(PROVIDERS)}")
        device = table.get("device", "")
        if not isinstance(device, str):
            raise RdmaConfigError(f"{where}: device must be a string")
        crc = table.get("crc", True)
        if not isinstance(crc, bool):
            raise RdmaConfigError(f"{where}: crc must be true or false")
        return cls(
            listen=tuple(_hostport(v, where) for v in listen),
            provider=provider,
            device=device,
            crc=crc,
        )
