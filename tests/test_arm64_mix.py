"""Tests of scripts/measure_arm64_mix.py: its classifier on words whose category is known."""
import struct

import pytest

from scripts import measure_arm64_mix as mix

WORDS = [   # (word, category or group); the disassembly capstone prints is in the comment
    (0xAA0103E0, "mov/reg/x"),          # mov x0, x1
    (0xD2800020, "mov/movw/x"),         # mov x0, #1 (movz)
    (0x92800000, "mov/movw/x"),         # mov x0, #-1 (movn)
    (0xB2400000, "orr/mask/x"),         # orr x0, x0, #1
    (0x8B020C20, "add/shift/x"),        # add x0, x1, x2, lsl #3
    (0x8B22C820, "add/ext/x"),          # add x0, x1, w2, sxtw #2
    (0x91400420, "add/imm/x"),          # add x0, x1, #1, lsl #12
    (0x53037C20, "lsr/imm/w"),          # lsr w0, w1, #3
    (0x9A9F17E0, "cset/cond/x"),        # cset x0, eq
    (0xFA401804, "ccmp/cond/x"),        # ccmp x0, #0, #4, ne
    (0x72001C1F, "tst/mask/w"),         # tst w0, #0xff
    (0xD3431C20, "ubfx/bitfield/x"),    # ubfx x0, x1, #3, #5
    (0x93407C20, "sxtw/reg/x"),         # sxtw x0, w1
    (0x1AC22020, "lsl/reg/w"),          # lsl w0, w1, w2
    (0x9E670020, "fmov/neon/x"),        # fmov d0, x1
    (0x0E205800, "cnt/neon/-"),         # cnt v0.8b, v0.8b
    (0x4E083C00, "mov/neon/x"),         # mov x0, v0.d[0] (umov)
    (0xF9400020, "mem"),                # ldr x0, [x1]
    (0x54000040, "branch"),             # b.eq
    (0xD503201F, "other"),              # nop
]


@pytest.mark.parametrize("word,expected", WORDS)
def test_category(word, expected):
    m = mix.Mix()
    m.feed(struct.pack("<I", word))
    assert m.n == 1
    got = next(iter(m.cats)) if m.cats else next(iter(m.groups))
    assert got == expected


def test_histograms_and_undecodable_words():
    m = mix.Mix()
    # and x0, x1, #0x5555555555555555 (2-bit elements, one bit set); an undefined word; add lsl #12
    m.feed(struct.pack("<III", 0x9200F020, 0xFFFFFFFF, 0x91400420))
    assert dict(m.esize) == {2: 1} and dict(m.ones) == {1: 1}
    assert m.invalid == 1 and m.n == 2 and m.lsl12 == {"lsl #12": 1}
