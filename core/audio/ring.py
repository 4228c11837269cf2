"""A preallocated single-producer / single-consumer ring buffer of samples.

Every sample is stored twice (at `i % capacity` and `i % capacity + capacity`), so any window
of up to `capacity` consecutive samples is one contiguous view of the buffer: no copy, no
`np.roll`, no allocation per frame.

Memory model (one writer thread, one reader thread):
- Samples are addressed by a monotonic index; `total_written` is the index after the newest.
- The writer first publishes `_reserved` (the end of the block it is about to write), then
  copies the samples, then publishes `total_written`. Both updates happen under a lock that
  is held only for the index update, never while copying.
- A reader may use indices in `[oldest_index, total_written)`. `read` returns a view into the
  live buffer: after using (or copying) it, the reader calls `intact(start)` to learn whether
  the writer lapped it meanwhile (a seqlock: `_reserved` moves before the data is touched).
- The reader reports its progress with `consume(index)`; a write that overwrites samples the
  reader has not consumed yet counts one overflow (the oldest data is dropped).
"""

from __future__ import annotations

import threading

import numpy as np
from numpy.typing import DTypeLike


class RingBuffer:
    """`capacity` samples of `dtype`, written by one thread and read by another."""

    def __init__(self, capacity: int, dtype: DTypeLike = np.float32):
        if int(capacity) < 1:
            raise ValueError(f"ring buffer capacity must be >= 1, not {capacity}")
        self.capacity = int(capacity)
        self.dtype = np.dtype(dtype)
        self._buf = np.zeros(2 * self.capacity, dtype=self.dtype)  # each sample twice
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything (only while neither thread is using the buffer)."""
        with self._lock:
            self._written = 0  # index after the newest complete sample
            self._reserved = 0  # index after the block being written (== _written when idle)
            self._consumed = 0  # the reader's cursor, for overflow counting
            self.overflows = 0  # writes that dropped samples the reader had not consumed
            self.dropped = 0  # how many such samples

    # ---- writer side (audio callback): no allocation, no logging, no blocking beyond the lock
    def write(self, block: np.ndarray) -> None:
        """Append `block` (1-D, any length). Only the newest `capacity` samples are kept."""
        n = len(block)
        if n == 0:
            return
        cap = self.capacity
        if n > cap:  # only the last `capacity` samples can survive
            skipped = n - cap
            block = block[skipped:]
            n = cap
        else:
            skipped = 0
        with self._lock:
            start = self._written + skipped
            end = start + n
            self._reserved = end
            lost = end - cap - self._consumed
            if lost > 0:
                self.overflows += 1
                self.dropped += lost
                self._consumed = end - cap
        buf, p = self._buf, start % cap
        buf[p : p + n] = block  # p + n <= 2 * cap
        if p + n <= cap:
            buf[p + cap : p + cap + n] = block
        else:  # the part past `cap` also belongs at the front, the rest at the back
            head = cap - p
            buf[p + cap :] = block[:head]
            buf[: n - head] = block[head:]
        with self._lock:
            self._written = end

    # ---- reader side
    @property
    def total_written(self) -> int:
        """Monotonic index one past the newest sample."""
        return self._written

    @property
    def oldest_index(self) -> int:
        """The oldest index still held (and not being overwritten right now)."""
        with self._lock:
            return max(0, self._reserved - self.capacity)

    def available(self, since_index: int) -> int:
        """How many samples were written at or after `since_index` (may exceed what is still held)."""
        return max(0, self._written - int(since_index))

    def read(self, start_index: int, n: int) -> np.ndarray:
        """A contiguous read-only view of samples `[start_index, start_index + n)`.

        Raises IndexError when they are not written yet or already overwritten. The view aliases
        the live buffer: check `intact(start_index)` after using it.
        """
        start, n = int(start_index), int(n)
        if n < 0 or n > self.capacity:
            raise IndexError(f"cannot read {n} samples from a ring of {self.capacity}")
        with self._lock:
            written, oldest = self._written, max(0, self._reserved - self.capacity)
        if start < oldest:
            raise IndexError(f"samples from index {start} are gone (oldest held is {oldest})")
        if start + n > written:
            raise IndexError(f"samples up to index {start + n} are not written yet (have {written})")
        p = start % self.capacity
        view = self._buf[p : p + n]
        view.flags.writeable = False
        return view

    def intact(self, start_index: int) -> bool:
        """True when nothing from `start_index` on has been overwritten (call after using a view)."""
        with self._lock:
            return int(start_index) >= self._reserved - self.capacity

    def consume(self, index: int) -> None:
        """The reader is done with everything before `index` (used to count overflows)."""
        with self._lock:
            self._consumed = max(self._consumed, int(index))
