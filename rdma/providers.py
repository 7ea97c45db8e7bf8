"""Open the verbs device an :class:`~rdma.config.RdmaConfig` names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from . import verbs
from .config import RdmaConfig, RdmaConfigError


@asynccontextmanager
async def open_device(config: RdmaConfig) -> AsyncIterator[verbs.Device]:
    if config.provider == "iwarp":
        from .iwarp.provider import IwarpDevice

        async with IwarpDevice.open(crc=config.crc) as dev:
            yield dev
    elif config.provider == "pyverbs":
        from .pyverbs_provider import PyverbsDevice, unavailable_reason

        reason = unavailable_reason()
        if reason is not None:
            raise RdmaConfigError(f'[rdma] provider = "pyverbs": {reason}')
        async with PyverbsDevice.open(config.device or None) as pdev:
            yield pdev
    else:
        raise RdmaConfigError(f"unknown RDMA provider {config.provider!r}")
