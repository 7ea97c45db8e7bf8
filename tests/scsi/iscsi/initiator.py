"""A small iSCSI initiator on trio for end-to-end tests (built on the same wire codec)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import trio

from scsi.iscsi import pdu, text
from scsi.iscsi.chap import decode_binary, response
from scsi.iscsi.framing import Framer, Received


class LoginFailed(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"login failed with status {status:#06x}")
        self.status = status


@dataclass
class Result:
    status: int
    data: bytes
    sense: bytes = b""
    residual: int = 0
    overflow: bool = False
    underflow: bool = False


@dataclass
class Initiator:
    stream: trio.SocketStream
    name: str
    isid: bytes = field(default_factory=lambda: b"\x80" + os.urandom(5))
    framer: Framer = field(default_factory=lambda: Framer(allowed=frozenset(pdu.Opcode)))
    cmdsn: int = 1
    exp_statsn: int = 0
    itt: int = 1
    tsih: int = 0
    max_send: int = 8192
    buf: bytearray = field(default_factory=bytearray)
    immediate_data: bool = True
    first_burst: int = 65536
    initial_r2t: bool = True

    @classmethod
    async def connect(cls, port: int, name: str) -> Initiator:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        return cls(stream, name)

    async def _recv_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def recv(self) -> Received:
        head = await self._recv_exact(48)
        rest = await self._recv_exact(self.framer.rest_size(head))
        rx = self.framer.finish(head, memoryview(rest))
        sn = getattr(rx.record, "statsn", None)
        if sn is not None and not isinstance(rx.record, pdu.R2T):
            self.exp_statsn = (sn + 1) & 0xFFFFFFFF
        return rx

    async def send(self, head: bytes, data: bytes = b"") -> None:
        await self.stream.send_all(b"".join(bytes(b) for b in self.framer.frame(head, data)))

    async def send_raw(self, raw: bytes) -> None:
        await self.stream.send_all(raw)

    def next_itt(self) -> int:
        self.itt += 1
        return self.itt

    async def login(
        self,
        target: str | None,
        *,
        keys: list[tuple[str, str]] | None = None,
        chap: tuple[str, str] | None = None,
    ) -> dict[str, str]:
        base = [("InitiatorName", self.name)]
        base += [("TargetName", target)] if target else [("SessionType", "Discovery")]
        ops = keys or []
        answers: dict[str, str] = {}
        if chap:
            r = await self._login_pdu([*base, ("AuthMethod", "CHAP")], 0, 1, False)
            r = await self._login_pdu([("CHAP_A", "5")], 0, 1, False)
            ident, challenge = int(r["CHAP_I"]), decode_binary(r["CHAP_C"])
            resp = "0x" + response(ident, chap[1], challenge).hex()
            await self._login_pdu([("CHAP_N", chap[0]), ("CHAP_R", resp)], 0, 1, True)
            answers = await self._login_pdu(ops, 1, 3, True)
        else:
            answers = await self._login_pdu([*base, *ops], 1, 3, True)
        if answers.get("HeaderDigest") == "CRC32C":
            self.framer.header_digest = True
        if answers.get("DataDigest") == "CRC32C":
            self.framer.data_digest = True
        if "MaxRecvDataSegmentLength" in answers:
            self.max_send = int(answers["MaxRecvDataSegmentLength"])
        self.framer.max_recv_data = 1 << 24
        self.immediate_data = answers.get("ImmediateData", "Yes") == "Yes"
        self.initial_r2t = answers.get("InitialR2T", "Yes") == "Yes"
        self.first_burst = int(answers.get("FirstBurstLength", "65536"))
        return answers

    async def _login_pdu(
        self, pairs: list[tuple[str, str]], csg: int, nsg: int, transit: bool
    ) -> dict[str, str]:
        data = text.encode_pairs(pairs)
        rec = pdu.LoginRequest(
            self.isid,
            self.tsih,
            self.itt,
            0,
            self.cmdsn,
            self.exp_statsn,
            csg,
            nsg,
            transit,
            data_length=len(data),
        )
        await self.send(rec.encode(), data)
        rx = await self.recv()
        r = rx.record
        assert isinstance(r, pdu.LoginResponse)
        status = (r.status_class << 8) | r.status_detail
        if status:
            raise LoginFailed(status)
        self.tsih = r.tsih
        return dict(text.decode_pairs(rx.data, unique=False))

    async def command(
        self, lun: int, cdb: bytes, *, data_out: bytes = b"", read: int = 0, edtl: int | None = None
    ) -> Result:
        itt = self.next_itt()
        write = bool(data_out)
        edtl = edtl if edtl is not None else (len(data_out) if write else read)
        imm = b""
        if write and self.immediate_data:
            imm = data_out[: min(self.first_burst, self.max_send, edtl)]
        rec = pdu.ScsiCommand(
            itt,
            lun << 48,
            edtl,
            self.cmdsn,
            self.exp_statsn,
            cdb.ljust(16, b"\0"),
            read=bool(read),
            write=write,
            final=not (write and not self.initial_r2t and len(imm) < min(self.first_burst, edtl)),
            data_length=len(imm),
        )
        self.cmdsn += 1
        await self.send(rec.encode(), imm)
        sent = len(imm)
        if write and not self.initial_r2t:
            datasn = 0
            limit = min(self.first_burst, edtl)
            while sent < limit:
                chunk = data_out[sent : min(limit, sent + self.max_send)]
                final = sent + len(chunk) >= limit
                d = pdu.DataOut(
                    itt, 0xFFFFFFFF, datasn, sent, self.exp_statsn, final, data_length=len(chunk)
                )
                await self.send(d.encode(), chunk)
                datasn += 1
                sent += len(chunk)
        data_in = bytearray()
        while True:
            rx = await self.recv()
            r = rx.record
            if isinstance(r, pdu.R2T):
                off, end, datasn = r.offset, r.offset + r.length, 0
                while off < end:
                    chunk = data_out[off : min(end, off + self.max_send)]
                    d = pdu.DataOut(
                        itt,
                        r.ttt,
                        datasn,
                        off,
                        self.exp_statsn,
                        off + len(chunk) >= end,
                        data_length=len(chunk),
                    )
                    await self.send(d.encode(), chunk)
                    off += len(chunk)
                    datasn += 1
            elif isinstance(r, pdu.DataIn):
                data_in[r.offset : r.offset + len(rx.data)] = rx.data
                if r.status is not None:
                    return Result(
                        r.status, bytes(data_in), b"", r.residual, r.overflow, r.underflow
                    )
            elif isinstance(r, pdu.ScsiResponse):
                sense = bytes(rx.data[2:]) if len(rx.data) >= 2 else b""
                return Result(r.status, bytes(data_in), sense, r.residual, r.overflow, r.underflow)
            elif isinstance(r, pdu.NopIn) and r.ttt != 0xFFFFFFFF:
                await self.send(pdu.NopOut(0xFFFFFFFF, r.ttt, self.cmdsn, self.exp_statsn).encode())
            elif isinstance(r, pdu.Reject):
                raise RuntimeError(f"reject {r.reason:#x}")

    async def text_request(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        data = text.encode_pairs(pairs)
        rec = pdu.TextRequest(
            self.next_itt(), 0xFFFFFFFF, self.cmdsn, self.exp_statsn, data_length=len(data)
        )
        self.cmdsn += 1
        await self.send(rec.encode(), data)
        rx = await self.recv()
        assert isinstance(rx.record, pdu.TextResponse)
        return text.decode_pairs(rx.data, unique=False)

    async def logout(self) -> pdu.LogoutResponse:
        rec = pdu.LogoutRequest(self.next_itt(), 0, 0, self.cmdsn, self.exp_statsn)
        await self.send(rec.encode())
        rx = await self.recv()
        assert isinstance(rx.record, pdu.LogoutResponse)
        await self.stream.aclose()
        return rx.record
