"""One run of a batch, in its own process: ``python -m evolve.batch_child FOLDER ARGV_JSON``.

The child brings the run in ``FOLDER`` to its end from whatever state the folder is in: a
checkpoint there is resumed (``<command> --resume FOLDER``), anything else is cleared and the
run starts with ``ARGV_JSON`` (the ``python -m evolve`` command line of a new run). So the
batch process never has to know how far a run got, and a crash or a hang of one run stays in
its process.

Two guards keep two processes from ever writing one folder: an exclusive ``flock`` on the
folder, taken before anything is read (a run orphaned by a killed batch finishes its checkpoint
first), and the child's standard input, a pipe from the batch process: at its end-of-file
(the batch exited, even by ``kill -9``) the child sends itself SIGTERM, which the run answers
by finishing its generation, checkpointing and exiting 143.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from evolve.runfolder import CHECKPOINT

# ----------------------------------------------------------------- how the batch starts a child
#: the repository (the child imports Melvin from it)
ROOT = Path(__file__).resolve().parent.parent
#: States of a run that has ended (``--resume`` leaves them alone; failed: with --retry-failed)
ENDED = ("solved", "unsolved", "failed")
#: Seconds a stopped run has to checkpoint and exit before it is killed.
STOP_GRACE = 120.0


def child_env() -> dict:
    """A run's environment: Melvin importable, one thread per run (the batch is the parallelism)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")


def child_command(folder: Path, argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "evolve.batch_child", str(folder), json.dumps(argv)]


def hang_limit(spec) -> float | None:
    """Seconds after which a run's process counts as hung."""
    if spec.timeout is not None:
        return float(spec.timeout)
    # generous: a first run on a machine compiles numba's kernels (a minute or more under load)
    return None if spec.time_limit is None else 3 * spec.time_limit + 300.0


# ----------------------------------------------------------------- the child


def _watch_parent() -> None:
    """SIGTERM to this process when standard input ends (the batch process is gone)."""
    def watch():
        try:           # the raw descriptor: a buffered reader's lock would hold up the exit
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def command(folder: Path, fresh: list[str]) -> list[str]:
    """The command that continues the run in ``folder``: a resume when it holds a checkpoint
    (and the subcommand can resume), else ``fresh`` in a folder emptied first."""
    from evolve.batch_spec import subcommand_parser
    if (folder / CHECKPOINT).is_file():
        parser = subcommand_parser(fresh[0])
        if parser is not None and any("--resume" in a.option_strings for a in parser._actions):
            return [fresh[0], "--resume", str(folder), "--quiet"]
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return fresh


def main(argv: list[str]) -> int:
    folder, fresh = Path(argv[0]), json.loads(argv[1])
    if not sys.stdin.isatty():
        _watch_parent()
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        cmd = command(folder, fresh)
        print(f"batch child {os.getpid()}: python -m evolve {' '.join(cmd)}", file=sys.stderr, flush=True)
        from evolve.__main__ import main as evolve_main
        return evolve_main(cmd)
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
