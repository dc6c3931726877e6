"""The logical-immediate space of AArch64 (``and``/``orr``/``eor``/``ands``/``tst`` #imm), ordered.

A logical immediate is a run of ``ones`` set bits, rotated right by ``r`` inside an element of
``esize`` bits (2..64), the element repeated across the register; it is encoded as the 13-bit
field N:immr:imms at bits 22:10 (N = 1 only for 64-bit elements). There are 5,334 of them for
64-bit registers and 1,302 for 32-bit ones. Genes index the list :data:`ORDERED` (and the
32-bit one): the first :data:`SIMPLE` entries are the masks compilers use most -- low masks
``2^k - 1``, single bits, their complements, top bits, and repeated patterns such as
0x5555..., 0xaaaa..., 0x0f0f..., 0xf0f0... -- so that drawing from them is the common case
(``evolve.alphabets.arm64`` draws them w.p. 0.7).
"""
from __future__ import annotations


def _element(ones: int, r: int, esize: int) -> int:
    run = (1 << ones) - 1
    return ((run >> r) | (run << (esize - r))) & ((1 << esize) - 1) if r else run


def _replicate(element: int, esize: int, width: int) -> int:
    value = 0
    for k in range(0, width, esize):
        value |= element << k
    return value


def _field(ones: int, r: int, esize: int) -> int:
    """N:immr:imms of a run of ``ones`` rotated by ``r`` in an ``esize``-bit element."""
    n = 1 if esize == 64 else 0
    imms = ((0x3F << (esize.bit_length())) & 0x3F) | (ones - 1)
    return (n << 12) | (r << 6) | imms


def _all(width: int) -> list[tuple[int, int, int, int]]:
    """(value, field, ones, r, esize) of every logical immediate of a ``width``-bit register."""
    out = []
    esize = 2
    while esize <= width:
        for ones in range(1, esize):
            for r in range(esize):
                out.append((_replicate(_element(ones, r, esize), esize, width), _field(ones, r, esize), ones, r,
                            esize))
        esize *= 2
    return out


def _ordered(width: int) -> tuple[list[int], list[int], int]:
    """(values, fields, how many are simple), simple ones first, then by element size (large
    first), run length and rotation."""
    entries = _all(width)
    full = (1 << width) - 1

    def simple(e):
        value, _f, ones, r, esize = e
        if esize == width:
            low = r == 0                                    # 2^k - 1
            bit = ones == 1                                 # 1 << k
            clear = ones == width - 1                       # ~(1 << k)
            top = r == ones                                 # the top k bits
            return low or bit or clear or top
        return r == 0 or r == ones                          # 0x5555..., 0x0f0f..., 0xaaaa..., 0xf0f0...

    def rank(e):
        value, _f, ones, r, esize = e
        if esize == width:
            group = 0 if r == 0 else (1 if ones == 1 else (2 if ones == width - 1 else 3))
        else:
            group = 4 if r == 0 else 5
        return (not simple(e), group, -esize, ones, r)

    entries.sort(key=rank)
    values = [e[0] for e in entries]
    assert len(set(values)) == len(values) and 0 not in values and full not in values
    return values, [e[1] for e in entries], sum(1 for e in entries if simple(e))


ORDERED, FIELDS, SIMPLE = _ordered(64)
ORDERED32, FIELDS32, SIMPLE32 = _ordered(32)
