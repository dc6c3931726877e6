#!/usr/bin/env python3
"""Which words send genomes of a real generation loop to Unicorn (issue 15): a census.

Runs the engine (pop 1000, 64 cases, emulated arm64, seed 0, the search off) for some
generations and records every batch the interpreter tier sees. A genome the decoder refuses
runs in Unicorn; each word of it the decoder refuses is counted by encoding class (the Arm
ARM's top-level groups and their subclasses), with what capstone makes of it and what a plain
Unicorn at EL0 does with it alone (an independent run: a fresh machine per word, no code of
the executors). ``--json`` writes the census; ``--root TREE`` imports another checkout.
"""
from __future__ import annotations

import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve() if "--root" in sys.argv[:-1] \
    else Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def word_class(w: int) -> str:
    """The Arm ARM's encoding class of ``w`` (top level, then a subclass where it helps)."""
    op0 = (w >> 25) & 15
    if op0 <= 3:
        return "reserved/unallocated/SVE (00xx)"
    if op0 >> 1 == 0b100:
        return f"DP immediate op={(w >> 23) & 7:03b}"
    if op0 >> 1 == 0b101:
        hi = w >> 29
        if hi & 3 == 0:
            return "branch immediate (b, bl)"
        if hi == 0b010:
            return "b.cond / unallocated (010)" if (w >> 25) & 1 == 0 else "unallocated 0101 1x (010 1)"
        if hi == 0b110:
            if (w >> 24) & 3 == 0:
                return "exception generation"
            if (w >> 22) & 15 == 0b0100:
                return "system (hints, barriers, pstate, sys, mrs/msr)"
            if (w >> 25) & 1:
                return "unconditional branch (register)"
            return "unallocated 110 (branch/system)"
        return f"compare/test and branch {hi & 3:02b}"
    if op0 & 0b0101 == 0b0100:
        op0_ = (w >> 28) & 3
        v = (w >> 26) & 1
        op2 = (w >> 23) & 3
        if op0_ == 0:
            if not v and (w >> 24) & 1 == 0 and (w >> 21) & 1 == 0:
                return "ldst exclusive / ordered"
            return "ldst op0=00 (SIMD structures, exclusive, unallocated)"
        if op0_ == 1:
            return "ldst literal / ldapr-stlr unscaled / MTE" + (" (V)" if v else "")
        if op0_ == 2:
            return f"ldst pair mode={op2}" + (" (V)" if v else "")
        if op2 >> 1:
            return "ldst unsigned immediate" + (" (V)" if v else "")
        if (w >> 21) & 1:
            kind = (w >> 10) & 3
            return ("ldst atomics" if kind == 0 else "ldst register offset" if kind == 2 else "ldst PAC") + \
                (" (V)" if v else "")
        return f"ldst unscaled/post/unpriv/pre kind={(w >> 10) & 3}" + (" (V)" if v else "")
    if op0 & 0b0111 == 0b0101:
        if (w >> 28) & 1 == 0:
            return "DP register: logical/add-sub"
        b24_21 = (w >> 21) & 15
        if b24_21 == 0b0110:
            return "DP register: 1/2 source" + (" (S=1)" if (w >> 29) & 1 else "")
        if (w >> 24) & 1:
            return "DP register: 3 source"
        return f"DP register op2={b24_21:04b}"
    op0_ = w >> 28
    return f"SIMD&FP op0={op0_:04b} op1={(w >> 23) & 3:02b}"


def refusing_words(words: np.ndarray, start: int, end: int) -> list[int]:
    """The words of genome ``words[start:end]`` the decoder refuses (strict, as ``decode``)."""
    from core.executors.interp import decoder as D
    ctl = np.zeros(D.N_FIELDS, np.int64)
    imm = np.zeros(2, np.uint64)
    return [int(words[p]) for p in range(start, end)
            if not D._decode_word(np.int64(words[p]), p, start, end, 4096, ctl, imm, True)]


def unicorn_alone(w: int) -> str:
    """What a fresh Unicorn (EL0, as Linux user space) does with ``w`` alone, then ``ret``."""
    from unicorn import UC_ARCH_ARM64, UC_HOOK_INTR, UC_MODE_ARM, UC_PROT_ALL, Uc, UcError
    from unicorn import arm64_const as A
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    code, stack, stop = 0x10000, 0x40000, 0x80000
    for base in (code, stack, stop):
        uc.mem_map(base, 0x10000, UC_PROT_ALL)
    uc.mem_write(code, w.to_bytes(4, "little") + (0xD65F03C0).to_bytes(4, "little"))
    uc.reg_write(A.UC_ARM64_REG_PSTATE, uc.reg_read(A.UC_ARM64_REG_PSTATE) & ~0xF)
    uc.reg_write(A.UC_ARM64_REG_SP, stack + 0x8000)
    uc.reg_write(A.UC_ARM64_REG_X30, stop)
    seen = []
    uc.hook_add(UC_HOOK_INTR, lambda u, intno, _d: (seen.append((intno, u.reg_read(A.UC_ARM64_REG_PC))), u.emu_stop()))
    try:
        uc.emu_start(code, stop, 0, 16)
    except UcError as exc:
        return f"error {exc.errno}"
    if seen:
        intno, pc = seen[0]
        return f"intr {intno} at +{pc - code}"
    return "ok" if uc.reg_read(A.UC_ARM64_REG_PC) == stop else "stopped"


def census(generations: int, seed: int = 0) -> dict:
    import capstone

    import core.executors.tiered as T
    from core.executors.interp import decoder as D
    from core.executors.interp.execute import flatten
    from evolve.config import RunConfig
    from evolve.engine import build

    batches = []
    inner = T.interpret

    def spy(codes, *args, **kw):
        done = inner(codes, *args, **kw)
        words, offsets = flatten(codes)
        batches.append((words.copy(), offsets.copy(), done.copy()))
        return done
    T.interpret = spy
    cfg = RunConfig(task="avg", pop=1000, generations=generations, time_limit=None, init_len=16,
                    backend="emulated", seed=seed, stop_when_solved=False, enumerate=False)
    engine = build(cfg)
    try:
        engine.start()
        for _ in range(generations):
            engine.step()
    finally:
        T.interpret = inner
        engine.evaluator.close()
    cs = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    n_genomes = refused = deferred = 0
    per_word = Counter()
    genomes_by_class = Counter()
    for words, offsets, done in batches:
        sup = D.decode(words, offsets, 256, 2048)[2]
        n_genomes += done.size
        deferred += int((sup & ~done).sum())
        for g in np.flatnonzero(~sup):
            refused += 1
            ws = refusing_words(words, int(offsets[g]), int(offsets[g + 1]))
            per_word.update(ws)
            for c in {word_class(w) for w in ws}:
                genomes_by_class[c] += 1
    classes = defaultdict(lambda: {"words": 0, "distinct": 0, "genomes": 0, "capstone": 0, "unicorn": Counter()})
    for w, k in per_word.items():
        c = classes[word_class(w)]
        c["words"] += k
        c["distinct"] += 1
        c["capstone"] += any(True for _ in cs.disasm(w.to_bytes(4, "little"), 0))
        c["unicorn"][unicorn_alone(w).split(" at")[0]] += 1
    for name, c in classes.items():
        c["genomes"] = genomes_by_class[name]
        c["unicorn"] = dict(c["unicorn"])
    return {"generations": generations, "batches": len(batches), "genomes": n_genomes, "refused": refused,
            "deferred": deferred, "refusing_words": sum(per_word.values()), "distinct_words": len(per_word),
            "classes": dict(sorted(classes.items(), key=lambda kv: -kv[1]["words"])),
            "words": {f"{w:08x}": k for w, k in per_word.most_common()}}


def main(argv=None) -> int:
    import argparse
    import json
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--generations", type=int, default=12, help="generations after the first population")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="FILE", help="write the census here (JSON)")
    ap.add_argument("--root", metavar="TREE", help="import the project from TREE instead of this checkout")
    args = ap.parse_args(argv)
    if args.generations < 0:
        ap.error("--generations must be >= 0")
    out = census(args.generations, args.seed)
    print(f"{out['genomes']} genomes in {out['batches']} batches; refused by the decoder {out['refused']} "
          f"({100 * out['refused'] / max(1, out['genomes']):.2f} %), deferred {out['deferred']}; "
          f"{out['refusing_words']} refusing words, {out['distinct_words']} distinct")
    print(f"{'class':<58} {'words':>6} {'dist':>5} {'genomes':>7} {'capst':>5}  unicorn alone")
    for name, c in out["classes"].items():
        print(f"{name:<58} {c['words']:>6} {c['distinct']:>5} {c['genomes']:>7} {c['capstone']:>5}  {c['unicorn']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
