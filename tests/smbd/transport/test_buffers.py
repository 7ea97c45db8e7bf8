"""The pool of large message buffers (smbd.transport.buffers)."""

from __future__ import annotations

import ctypes

import pytest

from smbd.transport.buffers import BufferPool


def _address(view: memoryview) -> int:
    ref = ctypes.c_char.from_buffer(view)
    try:
        return ctypes.addressof(ref)
    finally:
        del ref


@pytest.mark.parametrize("lead", [0, 1, 16, 64, 112, 200])
@pytest.mark.parametrize("size", [64 * 1024, 1 << 20, (1 << 20) + 112])
def test_byte_lead_of_a_pooled_view_is_cache_line_aligned(size: int, lead: int) -> None:
    """The kernel copies into and out of misaligned buffers at half speed: the byte the
    caller names (where a WRITE's data starts, or the view itself) sits on 64 bytes."""
    pool = BufferPool()
    for _ in range(2):  # a new buffer, then the same one from the free list
        v = pool.take(size, lead)
        assert len(v) == size and not v.readonly
        assert (_address(v) + lead) % 64 == 0
        pool.give(v)
        del v
    assert pool.statistics()["reused"] == 1


def test_take_gives_exact_size_views() -> None:
    pool = BufferPool()
    assert len(pool.take(100)) == 100  # below the pooled size: a plain buffer
    v = pool.take(8 * 1024 * 1024 + 112)
    assert len(v) == 8 * 1024 * 1024 + 112
    assert not v.readonly


def test_given_back_buffer_is_reused() -> None:
    pool = BufferPool()
    v = pool.take(1 << 20)
    v[0] = 42
    pool.give(v)  # nothing else refers to the buffer: it is kept
    assert pool.statistics()["buffers"] == 1
    w = pool.take(1 << 20)
    assert w[0] == 42  # the same memory again (contents are not cleared)
    assert pool.statistics() == {"held_bytes": 0, "buffers": 0, "reused": 1}


def test_buffer_with_a_live_slice_is_not_reused() -> None:
    pool = BufferPool()
    v = pool.take(1 << 20)
    kept = v[10:20]  # a handler kept part of the message
    kept[0] = 7
    pool.give(v)
    assert pool.statistics()["buffers"] == 0
    assert kept[0] == 7  # still valid, still the caller's
    assert pool.take(1 << 20).obj is not kept.obj


def test_buffer_exported_elsewhere_is_not_reused() -> None:
    pool = BufferPool()
    v = pool.take(1 << 20)
    other = memoryview(v)  # exported from the view itself
    pool.give(v)
    assert pool.statistics()["buffers"] == 0
    assert len(other) == 1 << 20


def test_pool_memory_is_bounded() -> None:
    pool = BufferPool(max_bytes=2 << 20)
    views = [pool.take(1 << 20) for _ in range(4)]
    for v in views:
        pool.give(v)
    del views, v
    assert pool.statistics()["held_bytes"] == 2 << 20
    assert pool.statistics()["buffers"] == 2


def test_foreign_buffers_are_ignored() -> None:
    pool = BufferPool()
    pool.give(memoryview(b"x" * (1 << 20)))  # bytes: not ours to reuse
    pool.give(memoryview(bytearray(1000 + (1 << 20))))  # not a size class
    assert pool.statistics()["buffers"] == 0
