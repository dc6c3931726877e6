"""Many machine codes in one buffer: what encoding makes, executors run and the brain stores.

A population's codes are one contiguous byte buffer plus CSR offsets. Splitting it into a
``bytes`` object per genome (and joining them again in the interpreter, the brain's code blob,
the worker pipe) costs more than interpreting the genome; :class:`Codes` keeps the buffer whole
and still behaves as the ``Sequence[bytes]`` every executor and the brain accept (``codes[i]``
is the bytes of genome i), so callers that want one genome's bytes still get them.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Codes(Sequence):
    """``n`` codes: genome i is ``buf[offsets[i]:offsets[i + 1]]``.

    Parameters
    ----------
    buf : uint8 [total]
        The codes one after another (no padding).
    offsets : int64 [n + 1]
        CSR offsets into ``buf``, ``offsets[0] == 0``, non-decreasing.
    """

    __slots__ = ("buf", "offsets")

    def __init__(self, buf: np.ndarray, offsets: np.ndarray) -> None:
        self.buf = np.ascontiguousarray(buf, np.uint8).ravel()
        self.offsets = np.ascontiguousarray(offsets, np.int64).ravel()
        if self.offsets.size == 0 or self.offsets[0] != 0 or self.offsets[-1] != self.buf.size \
                or np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must start at 0, not decrease and end at the buffer's size")

    @classmethod
    def from_list(cls, codes: Sequence[bytes]) -> "Codes":
        """One buffer of separate codes (a ``Codes`` is returned as it is)."""
        if isinstance(codes, Codes):
            return codes
        lengths = np.fromiter(map(len, codes), np.int64, len(codes))
        offsets = np.zeros(len(codes) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(np.frombuffer(b"".join(codes), np.uint8), offsets)

    @property
    def lengths(self) -> np.ndarray:
        """Bytes per code, int64 [n]."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return self.offsets.size - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        if isinstance(i, (int, np.integer)):
            n = len(self)
            if not -n <= i < n:
                raise IndexError("code index out of range")
            i = int(i) % n
            return self.buf[self.offsets[i]:self.offsets[i + 1]].tobytes()
        raise TypeError("Codes indices are integers or slices (use take for arrays)")

    def take(self, idx) -> "Codes":
        """The codes ``idx`` (int array), in that order, as one new buffer."""
        idx = np.asarray(idx, np.int64).ravel()
        starts, lengths = self.offsets[idx], self.lengths[idx]
        offsets = np.zeros(idx.size + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # byte j of the k-th code taken comes from starts[k] + j
        src = np.repeat(starts - offsets[:-1], lengths) + np.arange(int(offsets[-1]))
        return Codes(self.buf[src], offsets)

    def words(self) -> np.ndarray:
        """The buffer as little-endian uint32 words (4-byte instruction sets), no copy."""
        return self.buf.view("<u4")

    def __reduce__(self):           # worker processes get the two arrays
        return (Codes, (self.buf, self.offsets))

    def __eq__(self, other) -> bool:
        if isinstance(other, Codes):
            return np.array_equal(self.offsets, other.offsets) and np.array_equal(self.buf, other.buf)
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None
