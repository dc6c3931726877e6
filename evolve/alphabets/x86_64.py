"""The x86-64 gene alphabet: operations, their rendering and encoding (keystone per line).

x86-64 exists so that the native path runs at full speed on x86-64 machines and is tested
there; arm64 (:mod:`evolve.alphabets.arm64`) is the product. Instructions have different
sizes, so a jump's distance is the size of the genes it skips: genomes render and encode from
their end.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from core.asm import assemble
from evolve.alphabets.base import Gene, IsaGenes, Op

CONDITIONS = ("e", "ne", "b", "ae", "be", "a", "l", "ge", "le", "g", "s", "ns")
REGS = ("rax", "rdi", "rsi", "rdx", "rcx", "r8", "r9", "r10")

# imm ranges per kind (inclusive); register operands are drawn from the working registers
IMM_RANGE = {
    "x_r2": (0, 0), "x_r1": (0, 0), "x_sh": (0, 63), "x_imm": (-128, 127), "x_lea": (0, 0),
    "x_cmov": (0, len(CONDITIONS) - 1), "x_mem": (0, 1 << 16), "x_jcc": (1, 4 * len(CONDITIONS)),
    "raw": (0, 2**32 - 1),
}

OPS = tuple(
    [Op(n, "x_r2") for n in ("mov", "add", "sub", "imul", "and", "or", "xor")]
    + [Op(n, "x_r1") for n in ("neg", "not", "inc", "dec")]
    + [Op(n, "x_sh") for n in ("shl", "shr", "sar", "rol", "ror")]
    + [Op(n, "x_imm") for n in ("mov", "add", "sub", "and", "or", "xor")]
    + [Op("lea", "x_lea"), Op("cmp", "x_r2", 0.5), Op("cmov", "x_cmov")]
    + [Op("load", "x_mem", 0.5), Op("store", "x_mem", 0.5), Op("j", "x_jcc", 0.5)]
    + [Op(".word", "raw", 1.0, crashes=True)]
)


def render_genome(genome: Sequence[Gene], regs: tuple, slots: int) -> list[str]:
    # Jump distances are in bytes: encode from the end so each jump knows what follows it.
    lines: list[str] = [""] * len(genome)
    sizes: list[int] = [0] * len(genome)
    for i in range(len(genome) - 1, -1, -1):
        g = genome[i]
        line = render_gene(g, regs, slots, sizes[i + 1:])
        lines[i] = line
        sizes[i] = len(_encode_line(line))
    return lines


def render_gene(g: Gene, regs: tuple, slots: int, following: Sequence[int]) -> str:
    op, a, b, c, imm = g
    entry = OPS[op]
    d, s, t = regs[a % len(regs)], regs[b % len(regs)], regs[c % len(regs)]
    k, name = entry.kind, entry.name
    if k == "x_r2":
        return f"{name} {d}, {s}"
    if k == "x_r1":
        return f"{name} {d}"
    if k == "x_sh":
        return f"{name} {d}, {imm}"
    if k == "x_imm":
        return f"{name} {d}, {imm}"
    if k == "x_lea":
        return f"lea {d}, [{s} + {t}]"
    if k == "x_cmov":
        return f"cmov{CONDITIONS[imm % len(CONDITIONS)]} {d}, {s}"
    if k == "x_mem":
        off = 8 * (1 + imm % slots)
        return f"mov {d}, qword ptr [rsp - {off}]" if name == "load" else f"mov qword ptr [rsp - {off}], {d}"
    if k == "x_jcc":
        skip = min(1 + imm // len(CONDITIONS), len(following))
        return f"j{CONDITIONS[imm % len(CONDITIONS)]} {2 + sum(following[:skip])}"
    if k == "raw":
        return f".word {imm & 0xFFFFFFFF:#010x}"
    raise ValueError(f"unknown gene kind {k!r}")


@lru_cache(maxsize=1 << 16)
def _encode_line(line: str) -> bytes:
    return assemble([line], "x86_64")


_CODE: dict = {}   # (regs, slots) -> {gene: bytes}, genes whose encoding ignores position


def encode_genome(genome: Sequence[Gene], regs: tuple, slots: int) -> bytes:
    """Machine code of an x86-64 genome, built from the end (a jump's distance is the size of
    the genes it skips); position-independent genes come from a per-gene cache."""
    cache = _CODE.setdefault((regs, slots), {})
    parts: list[bytes] = [b""] * len(genome)
    sizes: list[int] = [0] * len(genome)
    for i in range(len(genome) - 1, -1, -1):
        g = genome[i]
        code = cache.get(g)
        if code is None:
            code = _encode_line(render_gene(g, regs, slots, sizes[i + 1:]))
            if OPS[g[0]].kind != "x_jcc":
                if len(cache) > 1 << 20:
                    cache.clear()
                cache[g] = code
        parts[i] = code
        sizes[i] = len(code)
    return b"".join(parts)


class X86Genes(IsaGenes):
    """The x86-64 alphabet behind :class:`evolve.genes.Alphabet`."""

    name = "x86_64"
    ops = OPS
    regs = REGS
    imm_range = IMM_RANGE
    small = {"x_imm": (-2, 16)}

    def scratch_slots(self, scratch: int) -> int:
        return max(1, scratch // 8)

    def render(self, genome: Sequence[Gene], regs: tuple, slots: int) -> list[str]:
        return render_genome(genome, regs, slots)

    def encode_many(self, genomes: Sequence[Sequence[Gene]], regs: tuple, slots: int) -> list[bytes]:
        return [encode_genome(g, regs, slots) if g else b"" for g in genomes]


GENES = X86Genes()
