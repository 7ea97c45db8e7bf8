"""The provider contract: what SMB Direct relies on from any verbs provider.

Runs on the userspace iWARP provider everywhere, and on pyverbs (rdma-core) where an RDMA
device exists (rxe or siw: ``rdma link add rxe0 type rxe netdev IFACE``); without a device
the pyverbs run skips and says so.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio

from rdma import verbs
from rdma.iwarp.provider import IwarpDevice
from rdma.pyverbs_provider import PyverbsDevice, unavailable_reason
from rdma.verbs import Access, QPState, Sge, VerbsError, WcOpcode, WcStatus

RW = Access.LOCAL_WRITE | Access.REMOTE_WRITE | Access.REMOTE_READ


@pytest.fixture(params=["iwarp", "pyverbs"])
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "pyverbs":
        reason = unavailable_reason()
        if reason is not None:
            pytest.skip(f"pyverbs provider: {reason}")
    return name


@pytest.fixture
async def device(provider: str) -> AsyncIterator[verbs.Device]:
    if provider == "pyverbs":
        async with PyverbsDevice.open() as pdev:
            yield pdev
    else:
        async with IwarpDevice.open() as idev:
            yield idev


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Side:
    pd: verbs.ProtectionDomain
    cq: verbs.CompletionQueue
    qp: verbs.QueuePair


async def pair(
    device: verbs.Device, *, server_recv: verbs.MemoryRegion | None = None, accept: bool = True
) -> tuple[Side, Side, verbs.Listener]:
    port = 0 if isinstance(device, IwarpDevice) else _free_port()
    listener = await device.listen("127.0.0.1", port)
    host, port = listener.local_address
    spd = device.alloc_pd()
    scq = device.create_cq(128)
    server: list[Side] = []

    async def serve() -> None:
        req = await listener.get_request()
        if not accept:
            await req.reject()
            return
        qp = req.create_qp(spd, scq, scq)
        if server_recv is not None:
            qp.post_recv(1000, [Sge(server_recv, 0, server_recv.length)])
        await req.accept()
        server.append(Side(spd, scq, qp))

    cpd = device.alloc_pd()
    ccq = device.create_cq(128)
    cqp = device.create_qp(cpd, ccq, ccq)
    failure: VerbsError | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        try:
            await cqp.connect(host, port)
        except VerbsError as e:
            failure = e
    if failure is not None:
        await listener.aclose()
        raise failure
    return server[0], Side(cpd, ccq, cqp), listener


async def test_send_arrives_in_a_receive_posted_before_accept(device: verbs.Device) -> None:
    server_pd_buf: list[verbs.MemoryRegion] = []
    listener = await device.listen(
        "127.0.0.1", 0 if isinstance(device, IwarpDevice) else _free_port()
    )
    spd, scq = device.alloc_pd(), device.create_cq(64)
    got: list[verbs.WorkCompletion] = []

    async def serve() -> None:
        req = await listener.get_request()
        qp = req.create_qp(spd, scq, scq)
        mr = spd.reg_mr(65536, Access.LOCAL_WRITE)
        server_pd_buf.append(mr)
        qp.post_recv(11, [Sge(mr, 0, 65536)])
        await req.accept()
        got.extend(await scq.poll())
        await qp.disconnect()

    cpd, ccq = device.alloc_pd(), device.create_cq(64)
    qp = device.create_qp(cpd, ccq, ccq)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        await qp.connect(*listener.local_address)
        head = cpd.reg_mr(bytearray(b"SMB2"), Access(0))
        body = cpd.reg_mr(bytearray(b"-direct" * 5000), Access(0))  # several FPDUs
        qp.post_send(7, [Sge(head, 0, 4), Sge(body, 0, body.length)])
        wcs = await ccq.poll()
        assert wcs == [verbs.WorkCompletion(7, WcStatus.SUCCESS, WcOpcode.SEND, 35004)]
    assert got == [verbs.WorkCompletion(11, WcStatus.SUCCESS, WcOpcode.RECV, 35004)]
    assert bytes(server_pd_buf[0].buf[:35004]) == b"SMB2" + b"-direct" * 5000
    with trio.fail_after(5):
        await qp.wait_disconnected()
    assert qp.state is QPState.ERROR
    await listener.aclose()


async def test_rdma_write_then_read_back(device: verbs.Device) -> None:
    server, client, listener = await pair(device)
    exposed = client.pd.reg_mr(1 << 20, RW)  # the client exposes a buffer (SMB2 READ/WRITE)
    data = bytes(range(256)) * 4096
    src = server.pd.reg_mr(bytearray(data), Access(0))
    server.qp.post_rdma_write(1, [Sge(src, 0, len(data))], exposed.addr, exposed.rkey)
    assert await server.cq.poll() == [
        verbs.WorkCompletion(1, WcStatus.SUCCESS, WcOpcode.RDMA_WRITE, len(data))
    ]
    # A write completion is local (iWARP); a later operation on the same stream is ordered
    # after the placement, which is what SMB Direct relies on (write, then the response).
    sink = server.pd.reg_mr(4096, Access.LOCAL_WRITE | Access.REMOTE_WRITE)
    server.qp.post_rdma_read(2, Sge(sink, 0, 4096), exposed.addr + 8192, exposed.rkey)
    assert await server.cq.poll() == [
        verbs.WorkCompletion(2, WcStatus.SUCCESS, WcOpcode.RDMA_READ, 4096)
    ]
    assert bytes(sink.buf) == data[8192 : 8192 + 4096]
    assert bytes(exposed.buf) == data
    await client.qp.disconnect()
    await server.qp.disconnect()
    await listener.aclose()


async def test_send_with_invalidate_invalidates_the_receivers_region(device: verbs.Device) -> None:
    server, client, listener = await pair(device)
    exposed = client.pd.reg_mr(4096, RW)
    recv = client.pd.reg_mr(256, Access.LOCAL_WRITE)
    client.qp.post_recv(5, [Sge(recv, 0, 256)])
    msg = server.pd.reg_mr(bytearray(b"read done"), Access(0))
    server.qp.post_send(6, [Sge(msg, 0, 9)], invalidate_rkey=exposed.rkey)
    assert await client.cq.poll() == [
        verbs.WorkCompletion(5, WcStatus.SUCCESS, WcOpcode.RECV, 9, invalidated_rkey=exposed.rkey)
    ]
    assert not exposed.valid
    await server.qp.disconnect()
    await client.qp.disconnect()
    await listener.aclose()


async def test_remote_access_violation_tears_down_and_flushes(device: verbs.Device) -> None:
    server, client, listener = await pair(device)
    read_only = client.pd.reg_mr(4096, Access.REMOTE_READ)
    pending = client.pd.reg_mr(256, Access.LOCAL_WRITE)
    client.qp.post_recv(9, [Sge(pending, 0, 256)])
    src = server.pd.reg_mr(bytearray(64), Access(0))
    server.qp.post_rdma_write(1, [Sge(src, 0, 64)], read_only.addr, read_only.rkey)
    with trio.fail_after(5):
        await client.qp.wait_disconnected()
        await server.qp.wait_disconnected()
    flushed = client.cq.poll_nowait()
    assert [(wc.wr_id, wc.status) for wc in flushed] == [(9, WcStatus.FLUSHED)]
    assert bytes(read_only.buf) == bytes(4096)
    if isinstance(device, IwarpDevice):
        assert device.errors >= 1
    await listener.aclose()


async def test_disconnect_flushes_the_peers_receives(device: verbs.Device) -> None:
    server, client, listener = await pair(device)
    buf = server.pd.reg_mr(1024, Access.LOCAL_WRITE)
    for i in range(3):
        server.qp.post_recv(i, [Sge(buf, i * 256, 256)])
    await client.qp.disconnect()
    with trio.fail_after(5):
        await server.qp.wait_disconnected()
    wcs = server.cq.poll_nowait()
    assert [(wc.wr_id, wc.status, wc.opcode) for wc in wcs] == [
        (i, WcStatus.FLUSHED, WcOpcode.RECV) for i in range(3)
    ]
    with pytest.raises(VerbsError):
        server.qp.post_send(1, [Sge(buf, 0, 1)])
    await listener.aclose()


async def test_reject_refuses_the_connection(device: verbs.Device) -> None:
    with pytest.raises(VerbsError):
        await pair(device, accept=False)


async def test_bad_posts_are_refused(device: verbs.Device) -> None:
    server, client, listener = await pair(device)
    mine = client.pd.reg_mr(64, Access(0))
    theirs = server.pd.reg_mr(64, Access.LOCAL_WRITE)
    with pytest.raises(VerbsError):
        client.qp.post_send(1, [Sge(theirs, 0, 8)])  # another PD's lkey
    with pytest.raises(VerbsError):
        client.qp.post_send(1, [Sge(mine, 60, 8)])  # outside the region
    with pytest.raises(VerbsError):
        client.qp.post_recv(1, [Sge(mine, 0, 8)])  # receive into a region without LOCAL_WRITE
    mine.deregister()
    with pytest.raises(VerbsError):
        client.qp.post_send(1, [Sge(mine, 0, 8)])  # deregistered
    await client.qp.disconnect()
    await server.qp.disconnect()
    await listener.aclose()
    if isinstance(device, IwarpDevice):
        theirs.deregister()
        assert device.statistics()["memory_regions"] == 0
