"""Reproduce the seed's experiment: five EXEC nodes, one works, four crash, 50 learning cycles.

Nodes 2000-2004 hold ARM64 code at blob offsets 1024, 1544, 2064, 2584, 3104:

==== =====================================  ==========================
node code                                   expected outcome
==== =====================================  ==========================
2000 ``add x0, x0, x1`` (input1 + input2)   ok
2001 ``.word 0x00000000`` (udf)             sigill
2002 ``mov x1, #0; ldr x0, [x1]``           sigsegv (null load)
2003 ``mov x1, #0; br x1``                  sigsegv (jump to 0)
2004 ``add x1, sp, #1; ldxr x0, [x1]``      sigbus (misaligned exclusive)
==== =====================================  ==========================

As in the seed, each node is probed once before learning (success rate 1.0 if the probe ran,
0.0 if it crashed; the probe is not an execution of the rule). Then every cycle feeds a chunk of
the input stream (random words with recurring motifs) into the brain, propagates, fires the EXEC
nodes whose activation exceeds ``threshold_ratio * mean activation``, executes them in one batch
on (input1, input2) taken from the chunk, and reinforces them with the seed's rule; each crash
feeds 0xFF on ports 250 and 31. Every EXEC node listens to 16 random data ports, so each fires in
roughly half of the cycles until its threshold rises. Usage::

    python scripts/reproduce_seed.py [--cycles 50] [--seed 1] [--backend auto]
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.asm import assemble  # noqa: E402
from core.brain.report import final_results, printable  # noqa: E402
from core.brain import Brain  # noqa: E402
from core.outcome import Outcome  # noqa: E402

NODES = (2000, 2001, 2002, 2003, 2004)
OFFSETS = (1024, 1544, 2064, 2584, 3104)
PROGRAMS = (
    ["add x0, x0, x1"],
    [".word 0x00000000"],
    ["mov x1, #0", "ldr x0, [x1]"],
    ["mov x1, #0", "br x1"],
    ["add x1, sp, #1", "ldxr x0, [x1]"],
)
PORTS_PER_NODE = 16
CHUNK = 16
MOTIF_RATE = 0.5
_WORDS = (b"melvin", b"learns", b"crash", b"code", b"arm64")


@dataclass
class Experiment:
    brain: Brain
    initial: list[tuple[int, int, float, float]]  #: (node, offset, threshold, success)
    probe_crashes: int
    first_cycle_crashes: list[int]
    check: tuple[int, int, int] | None            #: last (input1, input2, output) of node 2000
    backend: str


def _stream_chunk(rng: np.random.Generator) -> bytes:
    """Random bytes, with a word of a small vocabulary (recurring n-grams) planted at times."""
    out = bytearray(rng.integers(0, 256, CHUNK, dtype=np.uint8).tobytes())
    if rng.random() < MOTIF_RATE:
        word = _WORDS[int(rng.integers(len(_WORDS)))]
        at = int(rng.integers(0, CHUNK - len(word) + 1))
        out[at:at + len(word)] = word
    return bytes(out)


def build_brain(rng: np.random.Generator) -> Brain:
    """Nodes 0..2004: ports, free nodes, and the five EXEC nodes wired to random data ports."""
    brain = Brain(NODES[-1] + 1)
    codes = [assemble(p) for p in PROGRAMS]
    ids = brain.add_exec_nodes(codes, node_ids=NODES, offsets=OFFSETS)
    brain.listen_to_ports(ids, PORTS_PER_NODE, rng)
    return brain


def run_experiment(cycles: int, seed: int, backend: str) -> Experiment:
    """Run the seed's experiment; every execution goes through ``core.executors``."""
    from core.executors import open_executor

    rng = np.random.default_rng(seed)
    brain = build_brain(rng)
    ids = np.array(NODES, np.int64)
    first: list[int] = []
    check = None
    with open_executor("arm64", backend=backend, seed=seed) as ex:
        probe = ex.run(brain.codes(ids), np.array([[1, 2]], np.uint64))
        ok = probe.outcomes[:, 0] == Outcome.OK
        slots = brain.slots_of(ids)
        brain.success_rate[slots] = ok.astype(np.float32)
        t = brain.exec_table()
        initial = [(int(n), int(o), float(th), float(s)) for n, o, th, s in
                   zip(t["node"], t["offset"], t["threshold_ratio"], t["success_rate"])]
        for cycle in range(cycles):
            chunk = _stream_chunk(rng)
            brain.feed(chunk)
            brain.step()
            fired = brain.fire()
            if fired.size == 0:
                continue
            inputs = np.array([[chunk[0], chunk[1]]], np.uint64)
            res = brain.execute(ex, fired, inputs)
            if cycle == 0:
                first = [int(n) for n, o in zip(fired, res.outcomes[:, 0]) if o != Outcome.OK]
            if NODES[0] in fired:
                i = int(np.flatnonzero(fired == NODES[0])[0])
                if res.outcomes[i, 0] == Outcome.OK:
                    check = (int(chunk[0]), int(chunk[1]), int(res.outputs[i, 0]))
        backend_name = ex.backend
    return Experiment(brain, initial, int((~ok).sum()), first, check, backend_name)


def report(exp: Experiment) -> str:
    """The seed's two tables, in the seed's format, plus crash and result lines."""
    lines = ["EXEC NODES - Initial State"]
    for node, off, thr, s in exp.initial:
        lines.append(f"Node {node}: offset={off}, threshold_ratio={thr:.3f}, success_rate={s:.3f}")
    lines.append("")
    for node in exp.first_cycle_crashes[::-1]:
        lines.append(f"❌ EXEC code crashed (node {node})")
    lines.append("")
    lines += final_results(exp.brain)
    lines += ["",
              f"Crashes handled: {exp.brain.crashes_handled} "
              f"(+{exp.probe_crashes} in the initial probe); process alive",
              f"Backend: {exp.backend}"]
    if exp.check is not None:
        a, b, out = exp.check
        lines.append(f"Node {NODES[0]} last result: f({a}, {b}) = {out}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=50, help="learning cycles (default 50)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--backend", choices=("auto", "emulated", "native"), default="auto")
    args = ap.parse_args(argv)
    if args.cycles < 0 or args.seed < 0:
        ap.error("--cycles and --seed must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        exp = run_experiment(args.cycles, args.seed, args.backend)
    except ValueError as exc:  # e.g. --backend native on a host that cannot
        print(f"reproduce_seed: {exc}", file=sys.stderr)
        return 2
    text = report(exp)
    print(printable(text, getattr(sys.stdout, "encoding", None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
