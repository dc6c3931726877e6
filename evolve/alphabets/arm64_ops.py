"""The arm64 gene alphabet: the integer AArch64 that gcc and clang emit at -O2, as genes.

Every operation comes in the operand forms compilers lean on: shifted-register (lsl/lsr/asr, and
ror for logic) and extended-register (uxt*/sxt* with a shift) operands, the 32-bit W form of
every operation (which zero-extends its result), flag-setting arithmetic and logic, carries,
conditional compares, bitfield moves, the whole logical-immediate space
(:mod:`evolve.alphabets.bitmasks`), multiply-accumulate with long forms, ``tbz``/``tbnz``, and
the NEON bit-count idiom (``fmov``/``cnt``/``addv``/``uaddlv``/``umov``). How often each is
drawn follows how often compilers use it, measured from real aarch64 code
(``evolve/alphabets/arm64_mix.json``, made by ``scripts/measure_arm64_mix.py``).

A gene ``(op, a, b, c, imm)`` renders to one line of GNU assembly (:func:`render_gene`) through
its operation's operand template (``Op.syntax``) and its kind's immediate (:func:`_imm_fields`);
keystone assembles that line (:func:`encode_gene`: the reference). Genomes are encoded in bulk
by templates learned from keystone (:mod:`evolve.alphabets.arm64_encoder`); :mod:`evolve.alphabets.arm64`
puts both behind the alphabet interface.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.asm import assemble
from evolve.alphabets import bitmasks
from evolve.alphabets.base import Gene, Op

CONDITIONS = ("eq", "ne", "hs", "lo", "mi", "pl", "hi", "ls", "ge", "lt", "gt", "le")
#: architectural condition codes of :data:`CONDITIONS`
COND_CODES = (0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13)
SHIFTS = ("lsl", "lsr", "asr", "ror")
EXTENDS = ("uxtb", "uxth", "uxtw", "uxtx", "sxtb", "sxth", "sxtw", "sxtx")
MASKS = tuple(bitmasks.ORDERED)          # 64-bit logical immediates, simple ones first
MASKS32 = tuple(bitmasks.ORDERED32)
REGS = tuple(f"x{i}" for i in range(8))

# imm ranges per kind (inclusive); register operands are drawn from the working registers
IMM_RANGE = {
    "r3": (0, 0), "r2": (0, 0), "r4": (0, 0), "cmp": (0, 0), "neon": (0, 0), "raw": (0, 2**32 - 1),
    "r2i12": (0, 4095), "cmpi": (0, 4095), "r2sh": (0, 63), "r2mask": (0, len(MASKS) - 1),
    "sha": (0, 3 * 63 - 1), "shl": (0, 4 * 63 - 1), "ext": (0, 8 * 5 - 1),
    "csel": (0, len(CONDITIONS) - 1), "cset": (0, len(CONDITIONS) - 1),
    "ccmp": (0, 16 * len(CONDITIONS) - 1), "ccmpi": (0, 32 * 16 * len(CONDITIONS) - 1),
    "bfx": (0, 64 * 64 - 1), "bfi": (0, 64 * 64 - 1), "extr": (0, 63), "movw": (0, 4 * 65536 - 1),
    "mem": (0, 1 << 16), "bcond": (1, 4 * len(CONDITIONS)), "cbz": (1, 4), "tbz": (0, 4 * 64 - 1),
}
#: kind -> the small constants drawn w.p. 0.7 (the useful ones)
SMALL = {"r2i12": (0, 16), "cmpi": (0, 16), "r2mask": (0, bitmasks.SIMPLE - 1), "movw": (0, 255)}


def _ops(names: str, kind: str, syntax: str, weight: float = 1.0, widths=(64, 32)) -> list[Op]:
    return [Op(name, kind, weight, width=w, syntax=syntax) for w in widths for name in names.split()]


R3, R2, CMP2 = "{d}, {n}, {m}", "{d}, {n}", "{n}, {m}"
OPS = tuple(
    # the first entries keep the tokens of earlier alphabets (64-bit forms)
    _ops("add sub and orr eor bic orn eon lsl lsr asr ror mul udiv sdiv", "r3", R3, widths=(64,))
    + _ops("umulh smulh", "r3", R3, widths=(64,))
    + _ops("neg mvn clz rbit rev mov", "r2", R2, widths=(64,))
    + _ops("add sub", "r2i12", "{d}, {n}, #{imm}", widths=(64,))
    + _ops("lsl lsr asr ror", "r2sh", "{d}, {n}, #{amt}", widths=(64,))
    + _ops("and orr eor", "r2mask", "{d}, {n}, #{mask}", widths=(64,))
    + _ops("madd msub", "r4", "{d}, {n}, {m}, {a}", widths=(64,))
    + _ops("cmp tst cmn", "cmp", CMP2, widths=(64,)) + _ops("cmp", "cmpi", "{n}, #{imm}", widths=(64,))
    + _ops("csel csinc csinv csneg", "csel", "{d}, {n}, {m}, {cond}", widths=(64,))
    + _ops("cset", "cset", "{d}, {cond}", widths=(64,))
    + _ops("movz movk movn", "movw", "{d}, #{imm16}, lsl #{hw}", 0.5, widths=(64,))
    + [Op("ldr", "mem", 0.5, syntax="{d}, [sp, #{slot}]"), Op("str", "mem", 0.5, syntax="{d}, [sp, #{slot}]")]
    + [Op("b", "bcond", 0.5), Op("cbz", "cbz", 0.25, syntax="{n}, #{dist}"),
       Op("cbnz", "cbz", 0.25, syntax="{n}, #{dist}")]
    # Exploration: raw 32-bit words, one token per top nibble, so that the brain can learn which
    # encoding regions crash (reserved/SVE space: always; loads with wild addresses: mostly) and
    # which are harmless, instead of one averaged verdict on "random words".
    + [Op(".word", "raw", 0.125, crashes=True, prefix=k) for k in range(16)]
    # -------------------------------------------------- the rest of what compilers emit
    + _ops("adds subs ands bics adc sbc adcs sbcs mneg", "r3", R3)
    + _ops("add sub and orr eor bic orn eon lsl lsr asr ror mul udiv sdiv", "r3", R3, widths=(32,))
    + _ops("smull umull", "r3", "{d}, {wn}, {wm}", widths=(64,))
    + _ops("add sub adds subs", "sha", "{d}, {n}, {m}, {shift}")
    + _ops("and orr eor bic orn eon ands bics", "shl", "{d}, {n}, {m}, {shift}")
    + _ops("add sub adds subs", "ext", "{d}, {n}, {em}, {ext}")
    + _ops("negs ngc ngcs cls rev16", "r2", R2) + _ops("neg mvn clz rbit rev mov", "r2", R2, widths=(32,))
    + _ops("rev32", "r2", R2, widths=(64,)) + _ops("sxtw", "r2", "{d}, {wn}", widths=(64,))
    + _ops("sxtb sxth", "r2", "{d}, {wn}") + _ops("uxtb uxth", "r2", R2, widths=(32,))
    + _ops("neg negs", "sha", "{d}, {n}, {shift}") + _ops("mvn", "shl", "{d}, {n}, {shift}")
    + _ops("adds subs", "r2i12", "{d}, {n}, #{imm}") + _ops("add sub", "r2i12", "{d}, {n}, #{imm}", widths=(32,))
    + _ops("cmn", "cmpi", "{n}, #{imm}") + _ops("cmp", "cmpi", "{n}, #{imm}", widths=(32,))
    + _ops("lsl lsr asr ror", "r2sh", "{d}, {n}, #{amt}", widths=(32,))
    + _ops("ands", "r2mask", "{d}, {n}, #{mask}") + _ops("and orr eor", "r2mask", "{d}, {n}, #{mask}", widths=(32,))
    + _ops("tst", "r2mask", "{n}, #{mask}") + _ops("orr", "r2mask", "{d}, {zr}, #{mask}")
    + _ops("madd msub", "r4", "{d}, {n}, {m}, {a}", widths=(32,))
    + _ops("smaddl umaddl smsubl umsubl", "r4", "{d}, {wn}, {wm}, {a}", widths=(64,))
    + _ops("cmp tst cmn", "cmp", CMP2, widths=(32,))
    + _ops("cmp cmn", "sha", "{n}, {m}, {shift}") + _ops("tst", "shl", "{n}, {m}, {shift}")
    + _ops("cmp cmn", "ext", "{n}, {em}, {ext}")
    + _ops("ccmp ccmn", "ccmp", "{n}, {m}, #{nzcv}, {cond}") + _ops("ccmp ccmn", "ccmpi", "{n}, #{imm5}, #{nzcv}, {cond}")
    + _ops("csel csinc csinv csneg", "csel", "{d}, {n}, {m}, {cond}", widths=(32,))
    + _ops("cset", "cset", "{d}, {cond}", widths=(32,)) + _ops("csetm", "cset", "{d}, {cond}")
    + _ops("ubfx sbfx bfxil", "bfx", "{d}, {n}, #{lsb}, #{width}")
    + _ops("ubfiz sbfiz bfi", "bfi", "{d}, {n}, #{lsb}, #{width}")
    + _ops("extr", "extr", "{d}, {n}, {m}, #{lsb}")
    + _ops("movz movk movn", "movw", "{d}, #{imm16}, lsl #{hw}", 0.5, widths=(32,))
    + _ops("cbz cbnz", "cbz", "{n}, #{dist}", 0.25, widths=(32,))
    + _ops("tbz tbnz", "tbz", "{n}, #{bit}, #{dist}", 0.25, widths=(64,))
    # the NEON bit-count idiom of gcc's popcount/parity: x -> d, count bits per byte, add bytes
    + [Op("fmov", "neon", syntax="d{vd}, {xn}"), Op("fmov", "neon", syntax="{xd}, d{vn}"),
       Op("fmov", "neon", syntax="s{vd}, {wn}"), Op("fmov", "neon", syntax="{wd}, s{vn}"),
       Op("cnt", "neon", syntax="v{vd}.8b, v{vn}.8b"), Op("cnt", "neon", syntax="v{vd}.16b, v{vn}.16b"),
       Op("addv", "neon", syntax="b{vd}, v{vn}.8b"), Op("addv", "neon", syntax="b{vd}, v{vn}.16b"),
       Op("uaddlv", "neon", syntax="h{vd}, v{vn}.8b"), Op("uaddlv", "neon", syntax="h{vd}, v{vn}.16b"),
       Op("umov", "neon", syntax="{wd}, v{vn}.b[0]"), Op("umov", "neon", syntax="{wd}, v{vn}.h[0]")]
)


#: how a kind's operand form is named in ``arm64_mix.json`` (``<mnemonic>/<form>/<width>``)
_FORM = {"r3": "reg", "r2": "reg", "r4": "reg", "cmp": "reg", "r2i12": "imm", "cmpi": "imm", "r2sh": "imm",
         "r2mask": "mask", "sha": "shift", "shl": "shift", "ext": "ext", "csel": "cond", "cset": "cond",
         "ccmp": "cond", "ccmpi": "cond", "bfx": "bitfield", "bfi": "bitfield", "extr": "bitfield",
         "movw": "movw", "neon": "neon"}
#: the data-processing genes' total weight (that of the alphabet before the measured mix: it
#: keeps their share against loads/stores, branches and raw words, which the mix does not weigh)
_DP_TOTAL = 44.5


def _category(entry: Op) -> str | None:
    """The measured category of a data-processing gene (capstone's mnemonic: movz/movn print as mov,
    orr from the zero register as mov)."""
    form = _FORM.get(entry.kind)
    if form is None:
        return None
    name = "mov" if entry.name in ("movz", "movn") or entry.syntax.startswith("{d}, {zr}") else entry.name
    width = "x" if entry.width == 64 else "w"
    if entry.kind == "neon":
        width = "x" if "{xn}" in entry.syntax or "{xd}" in entry.syntax else (
            "w" if "{wn}" in entry.syntax or "{wd}" in entry.syntax else "-")
    return f"{name}/{form}/{width}"


def _measured(ops: tuple) -> tuple:
    """``ops`` with the data-processing weights of ``arm64_mix.json``: an operation's weight is the
    square root of its category's share (operations sharing a category split it), so that the
    common forms lead without drowning the rare ones (mov alone is half of compiled code);
    categories never seen get half the smallest measured weight."""
    mix = json.loads((Path(__file__).with_name("arm64_mix.json")).read_text())["weights"]
    cats = [_category(op) for op in ops]
    sharing = {c: cats.count(c) for c in cats if c}
    raw = {i: (mix.get(c, 0.0) / sharing[c]) ** 0.5 for i, c in enumerate(cats) if c}
    floor = 0.5 * min(v for v in raw.values() if v > 0)
    raw = {i: v or floor for i, v in raw.items()}
    scale = _DP_TOTAL / sum(raw.values())
    return tuple(Op(op.name, op.kind, raw[i] * scale, op.crashes, op.prefix, op.width, op.syntax) if i in raw else op
                 for i, op in enumerate(ops))


OPS = _measured(OPS)


def _imm_fields(kind: str, imm: int, width: int, slots: int, remaining: int) -> dict:
    """The template fields a kind's immediate gives (see ``IMM_RANGE`` for what ``imm`` spans)."""
    if kind in ("r2i12", "cmpi"):
        return {"imm": imm}
    if kind == "r2sh":
        return {"amt": imm % width}
    if kind == "r2mask":
        masks = MASKS if width == 64 else MASKS32
        return {"mask": f"{masks[imm % len(masks)]:#x}"}
    if kind in ("sha", "shl"):
        types = 3 if kind == "sha" else 4
        return {"shift": f"{SHIFTS[imm // 63 % types]} #{1 + imm % 63 % (width - 1)}"}
    if kind == "ext":
        ext, amt = EXTENDS[imm // 5 % 8], imm % 5
        return {"ext": f"{ext} #{amt}", "em_x": width == 64 and ext in ("uxtx", "sxtx")}
    if kind in ("csel", "cset"):
        return {"cond": CONDITIONS[imm % len(CONDITIONS)]}
    if kind == "ccmp":
        return {"cond": CONDITIONS[imm // 16 % len(CONDITIONS)], "nzcv": imm % 16}
    if kind == "ccmpi":
        return {"cond": CONDITIONS[imm // 512 % len(CONDITIONS)], "nzcv": imm // 32 % 16, "imm5": imm % 32}
    if kind in ("bfx", "bfi"):
        lsb = imm // 64 % width
        return {"lsb": lsb, "width": 1 + imm % 64 % (width - lsb)}
    if kind == "extr":
        return {"lsb": imm % width}
    if kind == "movw":
        return {"imm16": imm & 0xFFFF, "hw": 16 * ((imm >> 16) & (3 if width == 64 else 1))}
    if kind == "mem":
        return {"slot": 8 * (imm % slots)}
    if kind == "bcond":
        return {"cond": CONDITIONS[imm % len(CONDITIONS)], "dist": 4 * min(1 + imm // len(CONDITIONS), remaining)}
    if kind == "cbz":
        return {"dist": 4 * min(imm, remaining)}
    if kind == "tbz":
        return {"bit": imm % 64 if width == 64 else imm % 32, "dist": 4 * min(1 + imm // 64, remaining)}
    return {}


def render_gene(g: Gene, regs: tuple, slots: int, remaining: int) -> str:
    """One gene's line of GNU assembly (``regs``: the working registers, x0, x1, ... in order)."""
    op, a, b, c, imm = g
    n_regs = len(regs)
    return render_line(OPS[op], a % n_regs, b % n_regs, c % n_regs, (a + b + c) % n_regs, imm, slots, remaining)


def render_line(entry: Op, d: int, n: int, m: int, fourth: int, imm: int, slots: int, remaining: int) -> str:
    """The line of operation ``entry`` with register numbers ``d``, ``n``, ``m`` and ``fourth``."""
    if entry.kind == "raw":
        return f".word {imm & 0xFFFFFFFF:#010x}"
    r = "x" if entry.width == 64 else "w"
    fields = _imm_fields(entry.kind, imm, entry.width, slots, remaining)
    em = "x" if fields.pop("em_x", False) else "w"
    if entry.kind == "bcond":
        return f"b.{fields['cond']} #{fields['dist']}"
    text = entry.syntax.format(d=f"{r}{d}", n=f"{r}{n}", m=f"{r}{m}", a=f"{r}{fourth}", wn=f"w{n}", wm=f"w{m}",
                               xd=f"x{d}", xn=f"x{n}", wd=f"w{d}", em=f"{em}{m}", zr=f"{r}zr", vd=d, vn=n,
                               **fields)
    return f"{entry.name} {text}"


def encode_gene(g: Gene, regs: tuple, slots: int, remaining: int) -> bytes:
    """One gene's word through keystone: the reference the bulk encoder is checked against."""
    return assemble([render_gene(g, regs, slots, remaining)], "arm64")


def op_index(name: str, kind: str, width: int = 64, syntax: str | None = None) -> int:
    """The token of an operation (for tests and hand-written genomes)."""
    for i, entry in enumerate(OPS):
        if entry.name == name and entry.kind == kind and entry.width == width \
                and (syntax is None or entry.syntax == syntax):
            return i
    raise KeyError(f"no arm64 gene {name} ({kind}, {width}-bit)")
