"""``python -m evolve live``: a brain learning from a byte stream, as the seed ran on hardware.

EXEC nodes come from genome files (ARM64 assembly, one instruction per line, ``//`` or ``;``
comments). The stream (a file, or ``-`` for stdin) is read in chunks; each chunk is one
learning cycle: feed, propagate, fire, execute the fired nodes as one batch on (byte 0,
byte 1) of the chunk, reinforce. The brain is checkpointed every ``--checkpoint-every`` cycles,
at the end of the stream and on Ctrl-C (exit status 130 after saving); the seed's final table
is printed at the end. Memory stays bounded on an endless stream: chunks are read one at a
time and the pattern table has a fixed capacity.

Exit status: 0 stream ended, 130 interrupted (checkpoint saved), 2 bad arguments or input (one
line on stderr, nothing written).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

log = logging.getLogger(__name__)

PORTS_PER_NODE = 16


class LiveError(Exception):
    """Bad arguments or input: reported as one line, exit status 2."""


def add_parser(subparsers) -> None:
    """Register the ``live`` subcommand on an ``argparse`` subparsers object."""
    p = subparsers.add_parser("live", help="learn from a byte stream with EXEC nodes from genomes",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("genomes", nargs="*", type=Path, help="genome files (.s assembly)")
    p.add_argument("--input", "-i", default="-", help="byte stream file, '-' for stdin")
    p.add_argument("--brain", required=True, type=Path,
                   help="checkpoint file (a brain file, e.g. brain.safetensors)")
    p.add_argument("--resume", action="store_true", help="continue the brain in --brain")
    p.add_argument("--checkpoint-every", type=int, default=1000, metavar="CYCLES")
    p.add_argument("--chunk", type=int, default=16, help="bytes per learning cycle")
    p.add_argument("--max-bytes", type=int, default=None, help="stop after this many bytes")
    p.add_argument("--max-patterns", type=int, default=4096, help="cap on byte patterns")
    p.add_argument("--backend", choices=("auto", "emulated", "native"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def _read_genome(path: Path) -> bytes:
    from core.asm import AsmError, assemble

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise LiveError(f"cannot read genome {path}: {exc}") from None
    try:
        return assemble(text, "arm64")
    except AsmError as exc:
        raise LiveError(f"genome {path}: {exc}") from None


def _prepare(args: argparse.Namespace):
    """Validate everything and build the brain before anything is written."""
    from core.brain import Brain, BrainParams
    from core.brain.file import BrainFileError

    if args.chunk < 2 or args.checkpoint_every < 1 or args.max_patterns < 1 or args.seed < 0:
        raise LiveError("--chunk must be >= 2, --checkpoint-every and --max-patterns >= 1, "
                        "--seed >= 0")
    if args.max_bytes is not None and args.max_bytes < 0:
        raise LiveError("--max-bytes must be >= 0")
    target = args.brain
    if target.is_dir() or not target.parent.is_dir():
        raise LiveError(f"--brain {target}: not a file path in an existing directory")
    codes = [(str(p), _read_genome(p)) for p in args.genomes]
    rng = np.random.default_rng(args.seed)
    if args.resume:
        try:
            brain = Brain.load(target)
        except (OSError, BrainFileError) as exc:
            raise LiveError(f"cannot resume: {exc}") from None
        names = {int(k): v for k, v in brain.metadata.get("names", {}).items()}
        known = set(brain.codes(brain.exec_node[:brain.n_exec]))
        codes = [(n, c) for n, c in codes if c not in known]
    else:
        if target.exists():
            raise LiveError(f"--brain {target} exists: pass --resume to continue it")
        if not codes:
            raise LiveError("no genome files given")
        base = BrainParams()
        # live mode learns no genes: a small gene table keeps checkpoints small
        brain = Brain(params=replace(
            base, byte_patterns=replace(base.byte_patterns, capacity=args.max_patterns,
                                        seed=args.seed + 1),
            gene_patterns=replace(base.gene_patterns, capacity=16, candidate_bits=4)))
        names = {}
    if codes:
        ids = brain.add_exec_nodes([c for _, c in codes])
        brain.listen_to_ports(ids, PORTS_PER_NODE, rng)
        names.update({int(i): n for i, (n, _) in zip(ids, codes)})
    if brain.n_exec == 0:
        raise LiveError("the brain has no EXEC node")
    if args.input == "-":
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(args.input, "rb")
        except OSError as exc:
            raise LiveError(f"cannot open input: {exc}") from None
    return brain, names, stream


def _read(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes, returning early with what a pipe has (``read1``) instead of waiting."""
    read1 = getattr(stream, "read1", None)
    return read1(n) if read1 is not None else stream.read(n)


def run(args: argparse.Namespace) -> int:
    """Run live mode; returns the exit status (0, 2, or 130/143 after Ctrl-C/SIGTERM)."""
    from core.brain.report import final_results, printable
    from core.executors import open_executor

    try:
        brain, names, stream = _prepare(args)
    except LiveError as exc:
        print(f"live: {exc}", file=sys.stderr)
        return 2
    meta = brain.metadata or {}
    state = {"bytes": int(meta.get("bytes_seen", 0)), "cycles": int(meta.get("cycles", 0))}

    def checkpoint() -> None:
        brain.save(args.brain, {"names": {str(k): v for k, v in names.items()},
                                "bytes_seen": state["bytes"], "cycles": state["cycles"]})

    interrupted = False
    budget = args.max_bytes
    stopped_by: list = []

    def on_signal(signum, frame):   # Ctrl-C, or a service stop (saves alike, then exits 130 / 143)
        stopped_by.append(signum)
        raise KeyboardInterrupt

    # the signal is also recorded: a KeyboardInterrupt raised inside a ctypes callback (Unicorn's
    # hooks) is printed and dropped by ctypes, and the stream would then be read to its end
    previous_int = signal.signal(signal.SIGINT, on_signal)
    previous_term = signal.signal(signal.SIGTERM, on_signal)
    try:
        try:
            ex = open_executor("arm64", backend=args.backend, seed=args.seed)
        except ValueError as exc:
            print(f"live: {exc}", file=sys.stderr)
            return 2
        with ex:
            try:  # the announcement is inside: a Ctrl-C right after it still saves
                print(f"live: learning from {args.input} with {brain.n_exec} EXEC nodes "
                      f"({ex.backend})", file=sys.stderr, flush=True)
                while budget is None or budget > 0:
                    chunk = _read(stream, args.chunk if budget is None
                                  else min(args.chunk, budget))
                    if not chunk:
                        break
                    if budget is not None:
                        budget -= len(chunk)
                    _cycle(brain, ex, chunk)
                    state["bytes"] += len(chunk)
                    state["cycles"] += 1
                    if stopped_by:
                        raise KeyboardInterrupt
                    if state["cycles"] % args.checkpoint_every == 0:
                        checkpoint()
                        log.info("checkpoint after %d bytes", state["bytes"])
            except KeyboardInterrupt:
                interrupted = True
        interrupted = interrupted or bool(stopped_by)
        try:
            checkpoint()
        except KeyboardInterrupt:  # a second Ctrl-C while saving: save once more, then stop
            checkpoint()
            interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
        if stream is not sys.stdin.buffer:
            stream.close()
    lines = final_results(brain, names)
    lines += ["", f"Bytes: {state['bytes']}, cycles: {state['cycles']}, "
                  f"crashes handled: {brain.crashes_handled}",
              f"Checkpoint: {os.fspath(args.brain)}" + (" (interrupted)" if interrupted else "")]
    print(printable("\n".join(lines), getattr(sys.stdout, "encoding", None)), flush=True)
    return 128 + int(stopped_by[0] if stopped_by else signal.SIGINT) if interrupted else 0


def _cycle(brain, ex, chunk: bytes) -> None:
    """One learning cycle of the seed: feed, propagate, fire, execute, reinforce."""
    brain.feed(chunk)
    brain.step()
    fired = brain.fire()
    if fired.size:
        brain.execute(ex, fired, np.array([[chunk[0], chunk[1] if len(chunk) > 1 else 0]],
                                          np.uint64))
