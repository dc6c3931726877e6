#!/usr/bin/env python3
"""How often compilers use each AArch64 integer operation and operand form, measured (issue 14).

Why: the arm64 gene alphabet's operation weights should follow real code rather than taste. This
disassembles real aarch64 code with capstone and counts instructions by gene category
``<mnemonic>/<form>/<width>`` (mnemonic as capstone prints it, aliases included: mov, lsl, ubfx,
cset, cmp, tst, sxtw, ...; width ``x``/``w`` from the first general register, ``-`` if none; form
is one of reg shift ext imm mask movw bitfield cond neon, plus branch/mem/pcrel/fp_simd/other as
context groups that get no category). Two sources, reported apart and together:

* ``libraries``: the ``.text`` of the aarch64 shared libraries the qemu lane unpacks
  (``scripts/arm64-qemu.sh --prepare`` makes ``.qemu-arm64/rootfs``; Debian bookworm arm64:
  libc, libm, libstdc++, libcrypto, sqlite, ...). gconv modules and Python extensions are left out.
* ``kernels``: ``scripts/arm64_mix_kernels.c`` (small Hacker's Delight functions) compiled with
  ``aarch64-linux-gnu-gcc -O2 -c`` (Debian package ``gcc-aarch64-linux-gnu``).

Form rules: ``shift``/``ext`` are the shifted- and extended-register encodings (a zero shift is
``reg``); ``imm`` is any immediate operand not covered below (add/sub #imm12 incl. ``lsl #12``,
cmp #imm, and shift-by-immediate aliases lsl/lsr/asr/ror #n); ``mask`` is a logical bitmask
immediate (also ``mov`` when it is orr-immediate); ``movw`` movz/movk/movn and their ``mov``
alias; ``bitfield`` ubfx/sbfx/bfi/bfxil/ubfiz/sbfiz/extr; ``cond`` csel family, cset/csetm,
cinc/cinv/cneg, ccmp/ccmn; ``neon`` gp<->fp/simd fmov, umov/smov/mov/dup/ins with a gp register,
cnt, addv, uaddlv. ``weights`` (for the alphabet) are the dp+neon category shares of the two
sources averaged with equal weight, so the ~200 kernel dp instructions count as much as the
millions of library ones. Rerun (about 30 s; writes ``evolve/alphabets/arm64_mix.json``):

    scripts/arm64-qemu.sh --prepare    # once, if .qemu-arm64/rootfs is missing
    .venv/bin/python scripts/measure_arm64_mix.py [--rootfs DIR] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import re
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import capstone

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "scripts" / "arm64_mix_kernels.c"
LIB_DIRS = ("lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu")   # top level of each only

BRANCH = {"b", "bl", "br", "blr", "ret", "cbz", "cbnz", "tbz", "tbnz", "braa", "brab", "braaz",
          "brabz", "blraa", "blrab", "blraaz", "blrabz", "retaa", "retab"}
COND = {"csel", "csinc", "csinv", "csneg", "cset", "csetm", "cinc", "cinv", "cneg", "ccmp", "ccmn"}
BITFIELD = {"ubfx", "sbfx", "bfi", "bfxil", "ubfiz", "sbfiz", "ubfm", "sbfm", "bfm", "bfc", "extr"}
MOVW = {"movz", "movk", "movn"}
MUL = {"mul", "madd", "msub", "mneg", "smull", "umull", "smulh", "umulh", "smaddl", "umaddl",
       "smsubl", "umsubl", "smnegl", "umnegl"}
FLAGS = {"adds", "subs", "ands", "bics", "adcs", "sbcs", "negs", "ngcs", "cmp", "cmn", "tst"}
DP = (COND | BITFIELD | MOVW | MUL | FLAGS | {
    "add", "sub", "adc", "sbc", "ngc", "neg", "and", "orr", "orn", "eor", "eon", "bic", "mvn",
    "mov", "lsl", "lsr", "asr", "ror", "sdiv", "udiv", "sxtb", "sxth", "sxtw", "uxtb", "uxth",
    "clz", "cls", "rbit", "rev", "rev16", "rev32", "crc32b", "crc32h", "crc32w", "crc32x",
    "crc32cb", "crc32ch", "crc32cw", "crc32cx"})
NEON_ALWAYS = {"cnt", "addv", "uaddlv"}
NEON_LANE = {"umov", "smov", "mov", "dup", "ins", "fmov"}
GP = re.compile(r"^(?:([xw])(?:\d+|zr)|(sp)|(wsp))$")
FPREG = re.compile(r"^(?:[qdshb]\d+|v\d+)")
SHIFTS = ("lsl", "lsr", "asr", "ror")
EXTENDS = ("uxtb", "uxth", "uxtw", "uxtx", "sxtb", "sxth", "sxtw", "sxtx")


def text_section(path: Path) -> bytes | None:
    """The ``.text`` bytes of a little-endian ELF64 aarch64 file (no pyelftools needed)."""
    data = path.read_bytes()
    if data[:6] != b"\x7fELF\x02\x01" or struct.unpack_from("<H", data, 18)[0] != 183:
        return None
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    secs = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = secs[shstrndx][4]
    for name, _type, _flags, _addr, off, size in secs:
        end = data.index(b"\0", strtab + name)
        if data[strtab + name:end] == b".text":
            return data[off:off + size]
    return None


class Mix:
    """Counters for one body of code."""

    def __init__(self):
        self.n = self.invalid = 0
        self.groups, self.cats, self.shift, self.extend = Counter(), Counter(), Counter(), Counter()
        self.esize, self.ones, self.esize_ones, self.hw = Counter(), Counter(), Counter(), Counter()
        self.conds, self.bconds, self.lsl12, self.odd_gp = Counter(), Counter(), Counter(), Counter()
        self.mnems: dict[str, Counter] = {}

    def __iadd__(self, other: "Mix"):
        self.n += other.n
        self.invalid += other.invalid
        for k, v in vars(other).items():
            if isinstance(v, Counter):
                getattr(self, k).update(v)
        for g, c in other.mnems.items():
            self.mnems.setdefault(g, Counter()).update(c)
        return self

    def feed(self, code: bytes):
        md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
        pos = 0
        while pos + 4 <= len(code):
            end = min(len(code), pos + 65536)
            for addr, size, mnem, op_str in md.disasm_lite(code[pos:end], pos):
                self.count(int.from_bytes(code[addr:addr + 4], "little"), mnem, op_str)
                pos = addr + size
            if pos + 4 <= end:
                self.invalid += 1   # capstone stopped at a word it cannot decode: skip it
                pos += 4

    def count(self, word: int, m: str, op_str: str):
        self.n += 1
        group, cat = self.classify(word, m, op_str)
        self.groups[group] += 1
        self.mnems.setdefault(group, Counter())[m] += 1
        if cat:
            self.cats[cat] += 1

    def classify(self, word: int, m: str, op_str: str):
        if m in BRANCH or m.startswith("b."):
            if m.startswith("b."):
                self.bconds[m[2:]] += 1
            return "branch", None
        if m.startswith(("ld", "st", "prfm", "prfum", "cas", "swp")):
            return "mem", None
        if m in ("adr", "adrp"):
            return "pcrel", None
        ops = [o.strip() for o in op_str.split(",")] if op_str else []
        gp = [GP.match(o) for o in ops]
        width = next(("x" if g.group(1) == "x" or g.group(2) else "w" for g in gp if g), "-")
        has_fp = any(FPREG.match(o) for o in ops)
        if m in NEON_ALWAYS or (m in NEON_LANE and has_fp and any(gp)):
            return "neon", f"{m}/neon/{width}"
        if not (ops and gp[0] and m in DP):
            if ops and gp[0] and not has_fp and m not in ("mrs", "msr"):
                self.odd_gp[m] += 1   # gp destination, not an operation we classify (SVE, MTE)
            return ("fp_simd" if has_fp or m.startswith("f") else "other"), None
        width = "x" if gp[0].group(1) == "x" or gp[0].group(2) else "w"
        return "dp", f"{m}/{self.form(word, m, ops)}/{width}"

    def form(self, word: int, m: str, ops: list[str]) -> str:
        top5 = (word >> 24) & 0x1F
        if m in COND:
            self.conds[ops[-1]] += 1
            return "cond"
        if m in BITFIELD:
            return "bitfield"
        if m in MOVW or (m == "mov" and (word >> 23) & 0x3F == 0b100101):
            self.hw[f"lsl #{16 * ((word >> 21) & 3)}"] += 1
            return "movw"
        if (word >> 23) & 0x3F == 0b100100:               # logical (bitmask) immediate
            n, imms = (word >> 22) & 1, (word >> 10) & 0x3F
            esize = 1 << ((n << 6 | (~imms & 0x3F)).bit_length() - 1)
            ones = (imms & (esize - 1)) + 1
            self.esize[esize] += 1
            self.ones[ones] += 1
            self.esize_ones[f"{esize}:{ones}"] += 1
            return "mask"
        if top5 == 0b01011 and (word >> 21) & 1:          # add/sub extended register
            self.extend[f"{EXTENDS[(word >> 13) & 7]} #{(word >> 10) & 7}"] += 1
            return "ext"
        if top5 == 0b01010 or (top5 == 0b01011 and not (word >> 21) & 1):   # shifted register
            amount = (word >> 10) & 0x3F
            if amount:
                self.shift[f"{SHIFTS[(word >> 22) & 3]} #{amount}"] += 1
                return "shift"
            return "reg"
        if any(o.startswith("#") for o in ops):
            if (word >> 23) & 0x3F == 0b100010:           # add/sub immediate: sh bit
                self.lsl12["lsl #12" if (word >> 22) & 1 else "lsl #0"] += 1
            return "imm"
        return "reg"

    def summary(self) -> dict:
        dp = {k: v for k, v in self.cats.items() if "/neon/" not in k}
        tot = sum(dp.values()) or 1

        def share(pred):
            return round(sum(v for k, v in dp.items() if pred(*k.split("/"))) / tot, 4)
        return {
            "dp_share_of_all": round(self.groups["dp"] / max(self.n, 1), 4),
            "w_form": share(lambda m, f, w: w == "w"), "x_form": share(lambda m, f, w: w == "x"),
            **{f"form_{f}": share(lambda m, ff, w, f=f: ff == f) for f in
               ("reg", "shift", "ext", "imm", "mask", "movw", "bitfield", "cond")},
            "flag_setting": share(lambda m, f, w: m in FLAGS),
            "mul_family": share(lambda m, f, w: m in MUL),
            "div": share(lambda m, f, w: m in ("sdiv", "udiv")),
            "mov_all_forms": share(lambda m, f, w: m == "mov"),
        }

    def to_json(self) -> dict:
        def top(c: Counter, k=None):
            return {str(a): b for a, b in c.most_common(k)}
        return {
            "instructions": self.n, "undecodable_words": self.invalid,
            "groups": top(self.groups), "summary_within_dp": self.summary(),
            "categories": top(self.cats),
            "shift": top(self.shift), "extend": top(self.extend),
            "mask": {"element_size": dict(sorted(self.esize.items())),
                     "run_length": dict(sorted(self.ones.items())),
                     "size_run_top": top(self.esize_ones, 25)},
            "movw_hw": top(self.hw), "addsub_imm_shift": top(self.lsl12),
            "conditions": top(self.conds), "branch_conditions": top(self.bconds),
            "top_mnemonics": {g: top(c, 12) for g, c in sorted(self.mnems.items())},
            "gp_mnemonics_not_classified": top(self.odd_gp, 20),
        }


def shares(mix: Mix) -> dict[str, float]:
    cats = mix.cats
    tot = sum(cats.values()) or 1
    return {k: v / tot for k, v in cats.items()}


def dump(obj, ind: int = 0, key: str = "") -> str:
    """JSON with one line per histogram, but categories, weights and files one entry a line."""
    if not isinstance(obj, dict) or (key not in ("categories", "weights", "files")
                                     and not any(isinstance(v, dict) for v in obj.values())):
        return json.dumps(obj)
    pad = " " * (ind + 1)
    items = [f"{pad}{json.dumps(k)}: {dump(v, ind + 1, k)}" for k, v in obj.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * ind + "}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rootfs", type=Path, default=ROOT / ".qemu-arm64" / "rootfs")
    ap.add_argument("--cc", default="aarch64-linux-gnu-gcc")
    ap.add_argument("--out", type=Path, default=ROOT / "evolve" / "alphabets" / "arm64_mix.json")
    args = ap.parse_args(argv)

    libs, lib_files = Mix(), {}
    paths = sorted(p for d in LIB_DIRS for p in (args.rootfs / d).glob("*.so*")
                   if p.is_file() and not p.is_symlink())
    if not paths:
        sys.exit(f"no aarch64 libraries under {args.rootfs}: run scripts/arm64-qemu.sh --prepare")
    for p in paths:
        code = text_section(p)
        if code is None:
            continue
        one = Mix()
        one.feed(code)
        libs += one
        lib_files[str(p.relative_to(args.rootfs))] = one.n
        print(f"{p.name:28s} {one.n:9d} insns", file=sys.stderr)

    kern = Mix()
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "k.o"
        subprocess.run([args.cc, "-O2", "-c", str(KERNELS), "-o", str(obj)], check=True)
        kern.feed(text_section(obj))
    cc_version = subprocess.run([args.cc, "--version"], capture_output=True, text=True).stdout
    n_funcs = len(re.findall(r"^\w[\w ]*?\b(\w+)\([^;]*\)\s*\{", KERNELS.read_text(), re.M))

    both = Mix()
    both += libs
    both += kern
    a, b = shares(libs), shares(kern)
    blend = {k: (a.get(k, 0) + b.get(k, 0)) / 2 for k in set(a) | set(b)}
    weights = {k: round(v, 6) for k, v in sorted(blend.items(), key=lambda kv: -kv[1])
               if round(v, 6) > 0}
    out = {
        "about": "AArch64 integer data-processing mix by gene category, measured by "
                 "scripts/measure_arm64_mix.py (issue 14); see its docstring for the rules.",
        "key": "<mnemonic>/<form>/<width>",
        "capstone": capstone.__version__,
        "weights_rule": "mean of the two sources' shares over dp+neon categories (each sums to 1)",
        "sources": {
            "libraries": {"rootfs": ".qemu-arm64/rootfs (scripts/arm64-qemu.sh, Debian arm64)",
                          "section": ".text", "files": lib_files},
            "kernels": {"file": "scripts/arm64_mix_kernels.c", "functions": n_funcs,
                        "compiler": cc_version.splitlines()[0], "flags": "-O2 -c"},
        },
        "libraries": libs.to_json(), "kernels": kern.to_json(), "combined": both.to_json(),
        "weights": weights,
    }
    args.out.write_text(dump(out) + "\n")
    print(f"wrote {args.out}: {len(weights)} weighted categories, "
          f"{libs.n} library + {kern.n} kernel instructions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
