"""``python -m evolve <command> ...``: the command line, a registry of subcommand modules.

Each module named in :data:`SUBCOMMANDS` (under ``evolve``) provides
``add_parser(subparsers)``, which registers its parser (``evolve.superopt``'s is ``optimize``:
``evolve.optimize`` is the optimisation phase) and sets ``run`` as a default, and
``run(args) -> int``, the exit status. Logging is configured here, in the entry point only.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: Subcommand modules, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[str, ...] = ("run", "batch", "live", "export", "analyze", "superopt", "brain")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m evolve", description="Melvin: evolve ARM64 code.")
    ap.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO)")
    sub = ap.add_subparsers(dest="command", required=True, metavar="command")
    for name in SUBCOMMANDS:
        importlib.import_module(f"evolve.{name}").add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
