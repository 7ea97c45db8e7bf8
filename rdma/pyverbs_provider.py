"""The rdma-core provider: :mod:`rdma.verbs` on pyverbs (libibverbs + librdmacm), for real
RDMA NICs, soft-RoCE (rxe) and soft-iWARP (siw).

RC queue pairs are created on RDMA-CM ids (``rdma_create_ep``) so that iWARP devices work.
librdmacm's synchronous calls (get_request, accept, connect) run in worker threads; a poller
task per queue pair moves work completions from the pyverbs CQ into the trio-side
:class:`~rdma.verbs.CompletionQueue`.  Keep every RDMA resource in this one process (rdma-core
is not fork-safe, as Samba learned).

:func:`unavailable_reason` says why this provider cannot run here (pyverbs missing, or no
RDMA device); the contract tests skip with that reason.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from . import verbs
from ._groups import unwrap_single
from .verbs import (
    Access,
    CompletionQueue,
    QPCap,
    QPState,
    Sge,
    VerbsError,
    WcOpcode,
    WcStatus,
    WorkCompletion,
)

log = logging.getLogger("rdma.pyverbs")

_POLL_IDLE = 0.0002
_LAB_HINT = "set up soft-RoCE or soft-iWARP: rdma link add rxe0 type rxe netdev IFACE"


def _sysfs_devices() -> list[str]:
    try:
        return sorted(os.listdir("/sys/class/infiniband"))
    except OSError:
        return []


def unavailable_reason() -> str | None:
    """None if pyverbs is importable and at least one RDMA device exists."""
    try:
        import pyverbs.device as d
    except ImportError:
        devices = _sysfs_devices()
        if not devices:
            return (
                "no RDMA device on this machine (/sys/class/infiniband is empty) and "
                f"pyverbs (rdma-core Python bindings) is not installed ({_LAB_HINT})"
            )
        return f"pyverbs (rdma-core Python bindings) is not installed (devices: {devices})"
    try:
        devices = d.get_device_list()
    except Exception as e:  # pyverbs raises its own error types for a missing sysfs class
        return f"no RDMA device ({e})"
    if not devices:
        return f"no RDMA device on this machine ({_LAB_HINT})"
    return None


def _access(access: Access) -> int:
    from pyverbs.libibverbs_enums import ibv_access_flags as A

    flags = 0
    if access & Access.LOCAL_WRITE:
        flags |= A.IBV_ACCESS_LOCAL_WRITE
    if access & Access.REMOTE_WRITE:
        flags |= A.IBV_ACCESS_REMOTE_WRITE | A.IBV_ACCESS_LOCAL_WRITE
    if access & Access.REMOTE_READ:
        flags |= A.IBV_ACCESS_REMOTE_READ
    return int(flags)


class PyverbsMR:
    """A registered region; ``buf`` is a view on the registered memory itself."""

    def __init__(self, pd: PyverbsPD, buffer: int | bytearray | memoryview, access: Access) -> None:
        from pyverbs.mr import MR

        self._keep: Any = None
        if isinstance(buffer, int):
            self._mr = MR(pd.pd, buffer, _access(access))
            length = buffer
        else:
            view = memoryview(buffer).cast("B")
            if view.readonly:  # ibv_reg_mr needs writable pages: register a copy
                view = memoryview(bytearray(view))
            length = len(view)
            arr = (ctypes.c_char * length).from_buffer(view)
            self._keep = (view, arr)
            self._mr = MR(pd.pd, length, _access(access), address=ctypes.addressof(arr))
        self._addr = int(self._mr.buf)
        self._view = memoryview((ctypes.c_char * length).from_address(self._addr)).cast("B")
        self._access = access
        self._valid = True

    @property
    def buf(self) -> memoryview:
        return self._view

    @property
    def addr(self) -> int:
        return self._addr

    @property
    def length(self) -> int:
        return len(self._view)

    @property
    def lkey(self) -> int:
        return int(self._mr.lkey)

    @property
    def rkey(self) -> int:
        return int(self._mr.rkey)

    @property
    def access(self) -> Access:
        return self._access

    @property
    def valid(self) -> bool:
        return self._valid

    def invalidate(self) -> None:
        self._valid = False

    def deregister(self) -> None:
        if self._valid or self._mr is not None:
            self._valid = False
            self._mr.close()


class PyverbsPD:
    def __init__(self, device: PyverbsDevice) -> None:
        from pyverbs.pd import PD

        self.device = device
        self.pd = PD(device.ctx)
        self.regions: dict[int, PyverbsMR] = {}

    def reg_mr(self, buffer: int | bytearray | memoryview, access: Access) -> PyverbsMR:
        mr = PyverbsMR(self, buffer, access)
        self.regions[mr.rkey] = mr
        return mr

    def dealloc(self) -> None:
        for mr in self.regions.values():
            mr.deregister()
        self.regions.clear()
        self.pd.close()


def _sges(sges: Sequence[Sge]) -> list[Any]:
    from pyverbs.wr import SGE

    return [SGE(s.mr.addr + s.offset, s.length, s.mr.lkey) for s in sges]


class PyverbsQP(verbs.QueuePairBase):
    """A queue pair on an RDMA-CM id (implements :class:`rdma.verbs.QueuePair`)."""

    _numbers = itertools.count(1)

    def __init__(
        self,
        device: PyverbsDevice,
        pd: PyverbsPD,
        send_cq: CompletionQueue,
        recv_cq: CompletionQueue,
        cap: QPCap,
        cmid: Any = None,
    ) -> None:
        self.device = device
        self.pd = pd
        self._send_cq = send_cq
        self._recv_cq = recv_cq
        self.cap = cap
        self.cmid = cmid
        self._pending_recv: list[tuple[int, Sequence[Sge]]] = []
        self._state = QPState.INIT
        self._disconnected = trio.Event()
        self._qp_num = next(self._numbers)
        self._local: tuple[str, int] = ("", 0)
        self._remote: tuple[str, int] = ("", 0)
        self._cq: Any = None
        if cmid is not None:
            self._create_qp(cmid)

    def _init_attr(self) -> Any:
        from pyverbs.cq import CQ
        from pyverbs.libibverbs_enums import ibv_qp_type
        from pyverbs.qp import QPCap as PvCap
        from pyverbs.qp import QPInitAttr

        self._cq = CQ(self.device.ctx, self.cap.max_send_wr + self.cap.max_recv_wr, None, None, 0)
        cap = PvCap(
            max_send_wr=self.cap.max_send_wr,
            max_recv_wr=self.cap.max_recv_wr,
            max_send_sge=self.cap.max_send_sge,
            max_recv_sge=self.cap.max_recv_sge,
        )
        return QPInitAttr(qp_type=ibv_qp_type.IBV_QPT_RC, scq=self._cq, rcq=self._cq, cap=cap)

    def _create_qp(self, cmid: Any) -> None:
        cmid.create_qp(self._init_attr())
        for wr_id, sges in self._pending_recv:
            self._post_recv_now(wr_id, sges)
        self._pending_recv.clear()

    def _post_recv_now(self, wr_id: int, sges: Sequence[Sge]) -> None:
        from pyverbs.wr import RecvWR

        self.cmid.qp.post_recv(RecvWR(wr_id=wr_id, num_sge=len(sges), sg=_sges(sges)))

    def post_recv(self, wr_id: int, sges: Sequence[Sge]) -> None:
        if self.cmid is None or self._cq is None:
            self._pending_recv.append((wr_id, list(sges)))
            return
        self._post_recv_now(wr_id, sges)

    def _post(self, wr: Any) -> None:
        if self._state is not QPState.RTS:
            raise VerbsError(f"post in state {self._state.value}")
        try:
            self.cmid.qp.post_send(wr)
        except Exception as e:
            raise VerbsError(str(e)) from e

    def post_send(
        self, wr_id: int, sges: Sequence[Sge], *, invalidate_rkey: int | None = None
    ) -> None:
        from pyverbs.libibverbs_enums import ibv_send_flags, ibv_wr_opcode
        from pyverbs.wr import SendWR

        opcode = (
            ibv_wr_opcode.IBV_WR_SEND
            if invalidate_rkey is None
            else ibv_wr_opcode.IBV_WR_SEND_WITH_INV
        )
        wr = SendWR(
            wr_id=wr_id,
            opcode=opcode,
            num_sge=len(sges),
            sg=_sges(sges),
            send_flags=ibv_send_flags.IBV_SEND_SIGNALED,
        )
        if invalidate_rkey is not None:
            wr.imm_data = invalidate_rkey  # union with invalidate_rkey in ibv_send_wr
        self._post(wr)

    def post_rdma_write(self, wr_id: int, sges: Sequence[Sge], remote_addr: int, rkey: int) -> None:
        from pyverbs.libibverbs_enums import ibv_send_flags, ibv_wr_opcode
        from pyverbs.wr import SendWR

        wr = SendWR(
            wr_id=wr_id,
            opcode=ibv_wr_opcode.IBV_WR_RDMA_WRITE,
            num_sge=len(sges),
            sg=_sges(sges),
            send_flags=ibv_send_flags.IBV_SEND_SIGNALED,
        )
        wr.set_wr_rdma(rkey, remote_addr)
        self._post(wr)

    def post_rdma_read(self, wr_id: int, sge: Sge, remote_addr: int, rkey: int) -> None:
        from pyverbs.libibverbs_enums import ibv_send_flags, ibv_wr_opcode
        from pyverbs.wr import SendWR

        wr = SendWR(
            wr_id=wr_id,
            opcode=ibv_wr_opcode.IBV_WR_RDMA_READ,
            num_sge=1,
            sg=_sges([sge]),
            send_flags=ibv_send_flags.IBV_SEND_SIGNALED,
        )
        wr.set_wr_rdma(rkey, remote_addr)
        self._post(wr)

    def _start(self) -> None:
        self._state = QPState.RTS
        self.device._nursery.start_soon(self._poller)

    async def _poller(self) -> None:
        from pyverbs.libibverbs_enums import ibv_wc_opcode, ibv_wc_status

        opcodes = {
            ibv_wc_opcode.IBV_WC_SEND: WcOpcode.SEND,
            ibv_wc_opcode.IBV_WC_RDMA_WRITE: WcOpcode.RDMA_WRITE,
            ibv_wc_opcode.IBV_WC_RDMA_READ: WcOpcode.RDMA_READ,
            ibv_wc_opcode.IBV_WC_RECV: WcOpcode.RECV,
        }
        statuses = {
            ibv_wc_status.IBV_WC_SUCCESS: WcStatus.SUCCESS,
            ibv_wc_status.IBV_WC_LOC_LEN_ERR: WcStatus.LOCAL_LENGTH_ERROR,
            ibv_wc_status.IBV_WC_LOC_PROT_ERR: WcStatus.LOCAL_PROTECTION_ERROR,
            ibv_wc_status.IBV_WC_REM_ACCESS_ERR: WcStatus.REMOTE_ACCESS_ERROR,
            ibv_wc_status.IBV_WC_REM_OP_ERR: WcStatus.REMOTE_OPERATION_ERROR,
            ibv_wc_status.IBV_WC_WR_FLUSH_ERR: WcStatus.FLUSHED,
        }
        with_inv = 1 << 2  # IBV_WC_WITH_INV
        while self._state is QPState.RTS or self._cq is not None:
            n, wcs = self._cq.poll(64)
            if not n:
                if self._state is QPState.ERROR:
                    break
                await trio.sleep(_POLL_IDLE)
                continue
            for wc in wcs:
                status = statuses.get(wc.status, WcStatus.REMOTE_OPERATION_ERROR)
                opcode = opcodes.get(
                    wc.opcode, WcOpcode.RECV if wc.opcode & 0x80 else WcOpcode.SEND
                )
                inv = getattr(wc, "invalidated_rkey", None) if wc.wc_flags & with_inv else None
                ours = WorkCompletion(wc.wr_id, status, opcode, wc.byte_len, inv)
                cq = self._recv_cq if opcode is WcOpcode.RECV else self._send_cq
                if inv is not None and inv in self.pd.regions:
                    self.pd.regions[inv].invalidate()
                cq.push(ours)
                if status is not WcStatus.SUCCESS:
                    self._state = QPState.ERROR
        self._disconnected.set()

    async def connect(
        self, host: str, port: int, *, ird: int = 16, ord: int = 16, private_data: bytes = b""
    ) -> None:
        from pyverbs.cmid import CMID, AddrInfo, ConnParam
        from pyverbs.librdmacm_enums import rdma_port_space

        def work() -> Any:
            ai = AddrInfo(dst=host, dst_service=str(port), port_space=rdma_port_space.RDMA_PS_TCP)
            cmid = CMID(creator=ai)
            self.cmid = cmid
            self._create_qp(cmid)
            cmid.connect(ConnParam(resources=ird, depth=ord, private_data=private_data or None))
            return cmid

        try:
            await trio.to_thread.run_sync(work)
        except Exception as e:
            self._state = QPState.ERROR
            raise VerbsError(f"rdma_connect to {host}:{port}: {e}") from e
        self._remote = (host, port)
        self._start()

    async def disconnect(self) -> None:
        if self._state is QPState.RTS and self.cmid is not None:
            try:
                await trio.to_thread.run_sync(self.cmid.disconnect)
            except Exception as e:
                log.info("rdma_disconnect: %s", e)
        self._state = QPState.ERROR
        with trio.move_on_after(2):
            await self._disconnected.wait()
        self._disconnected.set()

    async def wait_disconnected(self) -> None:
        await self._disconnected.wait()


class PyverbsConnectionRequest:
    def __init__(self, device: PyverbsDevice, cmid: Any) -> None:
        self.device = device
        self.cmid = cmid
        self._qp: PyverbsQP | None = None

    @property
    def remote_address(self) -> tuple[str, int]:
        return ("", 0)

    @property
    def private_data(self) -> bytes:
        return b""

    @property
    def ird(self) -> int:
        return 16

    @property
    def ord(self) -> int:
        return 16

    def create_qp(
        self,
        pd: verbs.ProtectionDomain,
        send_cq: CompletionQueue,
        recv_cq: CompletionQueue,
        cap: QPCap | None = None,
    ) -> PyverbsQP:
        if not isinstance(pd, PyverbsPD):
            raise VerbsError("protection domain of another provider")
        self._qp = PyverbsQP(self.device, pd, send_cq, recv_cq, cap or QPCap(), self.cmid)
        return self._qp

    async def accept(self, *, ird: int = 16, ord: int = 16, private_data: bytes = b"") -> None:
        from pyverbs.cmid import ConnParam

        if self._qp is None:
            raise VerbsError("create_qp() before accept()")
        param = ConnParam(resources=ird, depth=ord, private_data=private_data or None)
        try:
            await trio.to_thread.run_sync(self.cmid.accept, param)
        except Exception as e:
            raise VerbsError(f"rdma_accept: {e}") from e
        self._qp._start()

    async def reject(self, private_data: bytes = b"") -> None:
        try:
            await trio.to_thread.run_sync(self.cmid.reject)
        except Exception as e:
            log.info("rdma_reject: %s", e)


class PyverbsListener:
    def __init__(self, device: PyverbsDevice, cmid: Any, address: tuple[str, int]) -> None:
        self.device = device
        self.cmid = cmid
        self._address = address

    @property
    def local_address(self) -> tuple[str, int]:
        return self._address

    async def get_request(self) -> PyverbsConnectionRequest:
        cmid = await trio.to_thread.run_sync(self.cmid.get_request, abandon_on_cancel=True)
        return PyverbsConnectionRequest(self.device, cmid)

    async def aclose(self) -> None:
        self.cmid.close()


class PyverbsDevice:
    """An rdma-core device (implements :class:`rdma.verbs.Device`)."""

    def __init__(self, nursery: trio.Nursery, name: str | None = None) -> None:
        import pyverbs.device as d

        names = [dev.name.decode() for dev in d.get_device_list()]
        if not names:
            raise VerbsError(f"no RDMA device ({_LAB_HINT})")
        self._name = name or names[0]
        self.ctx = d.Context(name=self._name)
        self._nursery = nursery

    @classmethod
    @asynccontextmanager
    async def open(cls, name: str | None = None) -> AsyncIterator[PyverbsDevice]:
        with unwrap_single():
            async with trio.open_nursery() as nursery:
                device = cls(nursery, name)
                try:
                    yield device
                finally:
                    nursery.cancel_scope.cancel()
                    device.ctx.close()

    @property
    def name(self) -> str:
        return self._name

    def alloc_pd(self) -> PyverbsPD:
        return PyverbsPD(self)

    def create_cq(self, depth: int) -> CompletionQueue:
        return CompletionQueue(depth)

    def create_qp(
        self,
        pd: verbs.ProtectionDomain,
        send_cq: CompletionQueue,
        recv_cq: CompletionQueue,
        cap: QPCap | None = None,
    ) -> PyverbsQP:
        if not isinstance(pd, PyverbsPD):
            raise VerbsError("protection domain of another provider")
        return PyverbsQP(self, pd, send_cq, recv_cq, cap or QPCap())

    async def listen(self, host: str, port: int, backlog: int = 16) -> PyverbsListener:
        from pyverbs.cmid import CMID, AddrInfo
        from pyverbs.librdmacm_enums import RAI_PASSIVE, rdma_port_space

        def work() -> Any:
            ai = AddrInfo(
                src=host,
                src_service=str(port),
                port_space=rdma_port_space.RDMA_PS_TCP,
                flags=RAI_PASSIVE,
            )
            cmid = CMID(creator=ai)
            cmid.listen(backlog)
            return cmid

        cmid = await trio.to_thread.run_sync(work)
        return PyverbsListener(self, cmid, (host, port))

    def statistics(self) -> dict[str, int]:
        return {}
