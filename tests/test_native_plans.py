"""Bulk entry plans (core.executors.native.plans) against capstone's per-code plans (light.entry_plan).

Differential: the table-driven Numba kernel and the capstone walk share only the per-instruction
facts (``light.insn_info``); boundaries, the scan rules and the branch checks are computed apart.
No code runs here.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from core.asm import assemble
from core.codes import Codes
from core.executors.native import plans as plans_mod
from core.executors.native.light import FULL, entry_plan
from core.executors.native.plans import PlanTable
from evolve.genes import alphabet_for


def _alphabet_codes(isa: str, n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        alphabet = alphabet_for(isa, n_regs=rng.randint(2, 8))
        genome = [alphabet.random_gene(rng) for _ in range(rng.randint(0, 16))]
        out.append(bytes(alphabet.encode(genome)))
    return out


def _check(table: PlanTable, isa: str, codes: list[bytes], precise: float = 1.0) -> np.ndarray:
    """Bulk plans of ``codes``: equal to capstone's; with the arm64 decoder a superset of them
    (every register, the scratch, the full entry capstone's asks for), equal on ``precise`` of
    the codes at least."""
    c = Codes.from_list(codes)
    got = table.plans(c.buf, c.offsets)
    want = np.array([entry_plan(isa, x) for x in codes], np.uint64)
    bad = np.flatnonzero((got | want) != got if table.decoder and isa == "arm64" else got != want)
    assert not len(bad), [(codes[i].hex(), hex(int(got[i])), hex(int(want[i]))) for i in bad[:5]]
    assert (got == want).mean() >= precise
    return got


@pytest.mark.parametrize("isa, decoder", [("x86_64", False), ("arm64", False), ("arm64", True)])
def test_bulk_plans_equal_capstone_plans_on_alphabet_genomes(isa, decoder):
    """Check that the bulk plans of random genomes of the native alphabet equal capstone's (the
    arm64 decoder's: on 95% of them, a superset on all), before and after the table knows
    their instructions."""
    table = PlanTable(isa, decoder)
    _check(table, isa, _alphabet_codes(isa, 150, 1), 0.95)        # learns
    got = _check(table, isa, _alphabet_codes(isa, 150, 2), 0.95)  # mostly known now
    assert len(set(got.tolist())) > 10   # the plans differ by genome: not all FULL


def _odd_x86(rng: random.Random, known: list[bytes]) -> bytes:
    """Known instructions spliced with random bytes, truncations, prefixes and branches."""
    parts = []
    for _ in range(rng.randint(0, 6)):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(known))
        elif r < 0.55:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 4))))
        elif r < 0.65:
            parts.append(rng.choice(known)[:-1])                       # truncated
        elif r < 0.75:
            parts.append(bytes([rng.choice((0x66, 0xF2, 0xF3, 0x48, 0x41, 0x0F))]))   # stray prefix
        elif r < 0.9:
            parts.append(bytes([rng.choice((0xEB, 0x74, 0x75)), rng.randrange(256)]))   # short jumps
        else:
            parts.append(rng.choice((b"\xc3", b"\x0f\x0b", b"\xcc", b"\x0f\x05", b"\xff\xe0")))
    return b"".join(parts)


def test_bulk_plans_equal_capstone_plans_on_odd_x86_codes():
    """Check that codes mixing known instructions with junk, truncations, stray prefixes and
    branches (into instructions, out of the code, backwards) get capstone's plans."""
    rng = random.Random(3)
    table = PlanTable("x86_64")
    known = _alphabet_codes("x86_64", 60, 4)
    _check(table, "x86_64", known)
    singles = [assemble([line], "x86_64") for line in (
        "mov rax, rdi", "add rax, rsi", "xor eax, eax", "mov al, 1", "ret", "movabs rax, 0x1122334455667788",
        "mov rax, qword ptr [rsp + 8]", "push rbx", "pop rbx", "lea rax, [rdi + rsi*2]", "cmove rax, rdx",
        "jmp rax", "call rax", "syscall", "std", "vzeroupper", "movq xmm0, rax", "mov rax, qword ptr fs:[0]")]
    pool = [i for i in singles if i] + [c for c in known if c]
    odd = [_odd_x86(rng, pool) for _ in range(400)] + [b"", b"\xc3", b"\xeb\x00", b"\xeb\xfe", b"\xeb\x01\x90\x90"]
    for _ in range(2):   # the second round with what the first taught the table
        got = _check(table, "x86_64", odd)
    assert (got == FULL["x86_64"]).any() and (got != FULL["x86_64"]).any()


@pytest.mark.parametrize("decoder", [False, True])
def test_bulk_plans_equal_capstone_plans_on_odd_arm64_words(decoder):
    """Check that arm64 codes of random words, branches anywhere and system instructions get
    capstone's plans (the decoder's: a superset)."""
    rng = random.Random(5)
    table = PlanTable("arm64", decoder)
    known = [c[k:k + 4] for c in _alphabet_codes("arm64", 40, 6) for k in range(0, len(c), 4)]
    special = [x.to_bytes(4, "little") for x in (
        0xD65F03C0, 0xD65F00A0, 0xD63F0000, 0x94000001, 0x14000001, 0x17FFFFFF, 0x54000040, 0xB4000040,
        0x36000040, 0xD4000001, 0xD4200000, 0x00000000, 0xD53BE040, 0xD51B4200, 0x9E670000, 0xAA1E03E0,
        0xF94003E0, 0xF90003E0, 0x910003E0, 0xA9407BFD)]
    odd = []
    for _ in range(400):
        words = []
        for _ in range(rng.randint(0, 8)):
            r = rng.random()
            words.append(rng.choice(known) if r < 0.5 else rng.choice(special) if r < 0.8
                         else rng.getrandbits(32).to_bytes(4, "little"))
        odd.append(b"".join(words))
    for _ in range(2):
        got = _check(table, "arm64", odd, 0.9)
    assert (got == FULL["arm64"]).any() and (got != FULL["arm64"]).any()


def test_known_instructions_plan_without_capstone(monkeypatch):
    """Check that new codes made of instructions the table knows are planned without the
    per-code capstone walk."""
    table = PlanTable("x86_64")
    first = _alphabet_codes("x86_64", 100, 7)
    _check(table, "x86_64", first)
    insns = sorted(table._known)
    rng = random.Random(8)
    new = [b"".join(rng.choice(insns) for _ in range(rng.randint(1, 12))) for _ in range(200)]
    want = np.array([entry_plan("x86_64", x) for x in new], np.uint64)

    def refuse(*_):
        raise AssertionError("capstone walk on a code of known instructions")
    monkeypatch.setattr(plans_mod, "entry_plan", refuse)
    c = Codes.from_list(new)
    assert (table.plans(c.buf, c.offsets) == want).all()


def test_arm64_decoder_plans_data_processing_without_capstone(monkeypatch):
    """Check that arm64 codes of data-processing, load/store and branch words are planned from
    the decoder's rows alone, and their plans are capstone's."""
    rng = random.Random(9)
    ops = (0x8B000000, 0xCB000000, 0xCA000000, 0xAA000000, 0x8A000000, 0x9B007C00, 0x91000000, 0xF9400000,
           0xF9000000, 0x9A800000, 0xB4000000)   # add sub eor orr and mul, add imm, ldr, str, csel, cbz
    words = [rng.choice(ops) | rng.randrange(1 << 5) << 16 | rng.randrange(31) << 5 | rng.randrange(30)
             for _ in range(3000)] + [0xF94007E1, 0xF90007E1, 0xD65F03C0]   # ldr/str x1, [sp, #8]; ret
    codes = [b"".join(rng.choice(words).to_bytes(4, "little") for _ in range(rng.randint(1, 12)))
             for _ in range(300)]
    want = np.array([entry_plan("arm64", x) for x in codes], np.uint64)

    def refuse(*_):
        raise AssertionError("capstone asked about a word the decoder knows")
    monkeypatch.setattr(plans_mod, "entry_plan", refuse)
    monkeypatch.setattr(plans_mod, "insn_info", refuse)
    c = Codes.from_list(codes)
    got = PlanTable("arm64").plans(c.buf, c.offsets)
    assert ((got | want) == got).all() and (got == want).mean() > 0.95
