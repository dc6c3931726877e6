"""``python -m evolve brain merge A B ... -o OUT``: brains combined, for ``--brain-from``.

The inputs are brain files or run folders (their ``brain.safetensors``; an island run's
``island-NN/`` folders each hold one, which already holds what the other islands sent it: give
one island's, not all); the output holds their gene patterns and statistics, each
observation counted once (:func:`evolve.prior.merge`), and no EXEC nodes. An existing OUT is
never overwritten; any bad input is one line on stderr and exit status 2, with nothing written.
"""
from __future__ import annotations

import json
from pathlib import Path

from evolve import config as C
from evolve import prior


def add_parser(subparsers) -> None:
    ap = subparsers.add_parser("brain", help="combine brains for --brain-from",
                               description="Work with brain files (gene patterns carried from run to run).",
                               formatter_class=C.HelpFormatter)
    sub = ap.add_subparsers(dest="brain_command", required=True, metavar="command")
    m = sub.add_parser("merge", help="merge brains' gene patterns into one brain file",
                       description="Merge the gene patterns and their statistics of brain files or run "
                                   "folders into one brain file (no EXEC nodes), each observation counted "
                                   "once: a run started from a prior adds what it learnt since.",
                       formatter_class=C.HelpFormatter)
    m.add_argument("inputs", nargs="+", type=Path, metavar="BRAIN",
                   help="brain file (brain.safetensors) or run folder holding one")
    m.add_argument("-o", "--out", type=Path, required=True, metavar="OUT",
                   help="the brain file to write (must not exist)")
    m.set_defaults(run=run)


def run(args) -> int:
    if args.out.exists():
        return C.fail(f"{str(args.out)!r} exists; brain merge does not overwrite it")
    try:
        brain, summary = prior.merge(list(args.inputs))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {k: summary[k] for k in ("isa", "alphabet") if k in summary}
        brain.save(args.out, {**meta, "merged_from": summary["inputs"]})
    except ValueError as exc:
        return C.fail(str(exc))
    except OSError as exc:
        return C.fail(f"cannot write {str(args.out)!r}: {exc.strerror or exc}")
    print(json.dumps({"out": str(args.out), **summary}))
    return 0
