"""RingBuffer: wraparound, contiguous views, overflow counting, one writer / one reader."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from core.audio.ring import RingBuffer


def test_every_window_is_a_contiguous_view_across_wraparound():
    ring = RingBuffer(10)
    data = np.arange(1, 38, dtype=np.float32)  # 37 samples: wraps 3 times
    for i in range(0, len(data), 3):
        ring.write(data[i : i + 3])
    assert ring.total_written == 37 and ring.oldest_index == 27
    for start in range(27, 38):
        for n in range(0, 38 - start):
            view = ring.read(start, n)
            np.testing.assert_array_equal(view, data[start : start + n])
            if n:
                assert np.shares_memory(view, ring._buf) and view.flags.c_contiguous
                assert not view.flags.writeable


def test_single_large_and_exact_capacity_blocks():
    ring = RingBuffer(8, dtype=np.int16)
    ring.write(np.arange(8, dtype=np.int16))
    np.testing.assert_array_equal(ring.read(0, 8), np.arange(8))
    ring.write(np.arange(100, 120, dtype=np.int16))  # longer than the ring: only the newest 8 stay
    assert ring.total_written == 28 and ring.oldest_index == 20
    np.testing.assert_array_equal(ring.read(20, 8), np.arange(112, 120))
    assert ring.read(20, 8).dtype == np.int16


def test_read_refuses_missing_data():
    ring = RingBuffer(4)
    ring.write(np.ones(6, np.float32))
    with pytest.raises(IndexError, match="gone"):
        ring.read(1, 2)
    with pytest.raises(IndexError, match="not written"):
        ring.read(4, 3)
    with pytest.raises(IndexError, match="ring of 4"):
        ring.read(2, 5)
    assert ring.available(2) == 4 and ring.available(10) == 0


def test_overflow_counts_only_unconsumed_losses():
    ring = RingBuffer(10)
    block = np.zeros(4, np.float32)
    for _ in range(2):
        ring.write(block)
    ring.consume(8)
    ring.write(block)  # 12 written, reader is at 8: nothing unread is lost
    ring.write(block)
    assert ring.overflows == 0
    ring.write(block)  # 20 written, oldest kept 10, reader still at 8: 2 samples lost
    assert (ring.overflows, ring.dropped) == (1, 2)
    ring.write(block)
    assert (ring.overflows, ring.dropped) == (2, 6)
    ring.consume(ring.total_written)
    ring.write(block)
    assert ring.overflows == 2


def test_intact_detects_a_lapping_writer():
    ring = RingBuffer(8)
    ring.write(np.arange(8, dtype=np.float32))
    view = ring.read(0, 4)
    assert ring.intact(0)
    ring.write(np.full(2, -1, np.float32))  # overwrites indices 0 and 1 under the view
    assert not ring.intact(0) and ring.intact(2)
    assert view[0] == -1  # the view aliases the live buffer, as documented


def test_concurrent_writer_and_reader_see_every_sample_in_order():
    ring = RingBuffer(4096, dtype=np.int64)
    total, block = 400_000, 97
    done = threading.Event()

    def writer():
        for start in range(0, total, block):
            while ring.total_written - ring._consumed > ring.capacity - block:
                done.wait(0.0001)  # back-pressure so nothing is dropped in this test
            ring.write(np.arange(start, min(start + block, total), dtype=np.int64))
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    cursor, checked = 0, 0
    while cursor < total:
        n = min(ring.available(cursor), 1000)
        if n == 0:
            done.wait(0.0001)
            continue
        chunk = ring.read(cursor, n).copy()
        assert ring.intact(cursor)
        np.testing.assert_array_equal(chunk, np.arange(cursor, cursor + n))
        cursor += n
        checked += n
        ring.consume(cursor)
    t.join()
    assert checked == total and ring.overflows == 0


def test_bad_capacity():
    with pytest.raises(ValueError, match="capacity"):
        RingBuffer(0)
