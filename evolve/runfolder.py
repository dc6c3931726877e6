"""The run folder: every file of one run, written atomically (PySR's ``outputs/<run_id>``).

``config.json`` (parameters, versions, host), ``metrics.jsonl`` (a line per generation),
``checkpoint.pkl`` + ``brain-<gen>.safetensors`` (the brain file it names; written first, so the
pair is consistent at every instant), ``progress.png``, the final ``brain.safetensors``, and the
results :mod:`evolve.results` writes (``result.json``, ``hall_of_fame.json``, ``best.s``). A checkpoint is a pickle of plain state (DEAP's recipe): load only your own.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import platform
import signal
import socket
import sys
from datetime import datetime
from pathlib import Path

from core.atomic import atomic_write  # re-exported: rf.atomic_write

CHECKPOINT = "checkpoint.pkl"
#: The final brain file of a run folder (an island's is ``island-NN/`` + this name).
BRAIN_FILE = "brain.safetensors"


@contextlib.contextmanager
def deferred_interrupt():
    """Within the block Ctrl-C (SIGINT) or SIGTERM (a job scheduler, ``kill``) only appends the
    signal's number to the yielded list: the loop finishes its generation (never interrupting
    numba or Unicorn mid-call), checkpoints and exits 128 + the number (130, 143). A second
    signal raises KeyboardInterrupt at once."""
    stop: list = []

    def on_signal(signum, frame):
        if stop:
            raise KeyboardInterrupt
        stop.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class RunFolderError(ValueError):
    """A run folder that cannot be used (missing, partial, corrupt); one-line message."""


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(obj):
    import numpy as np
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def default_run_dir(task: str, root: Path = Path("runs")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in task)
    return root / f"{stamp}_{safe}"


def environment() -> dict:
    """Versions and host facts recorded with every run."""
    import capstone
    import deap
    import keystone  # noqa: F401
    import llvmlite
    import numba
    import numpy
    import unicorn
    return {"python": sys.version.split()[0], "platform": platform.platform(), "machine": platform.machine(),
            "host": socket.gethostname(), "cpus": os.cpu_count(),
            "versions": {"numpy": numpy.__version__, "numba": numba.__version__, "llvmlite": llvmlite.__version__,
                         "deap": deap.__version__, "unicorn": unicorn.__version__,
                         "capstone": capstone.__version__, "keystone": "0.9.2"}}


def save_checkpoint(folder: Path, state: dict, brain) -> None:
    """Brain file first (its own atomic write), then the checkpoint that names it."""
    brain_name = None
    if brain is not None:
        brain_name = f"brain-{state['gen']:06d}.safetensors"
        brain.save(folder / brain_name, {"generation": state["gen"]})
    state = dict(state, brain_file=brain_name)
    atomic_write(folder / CHECKPOINT, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    for old in folder.glob("brain-*.safetensors"):
        if old.name != brain_name:
            old.unlink(missing_ok=True)


def load_checkpoint(folder: Path):
    """``(state, brain or None)``; RunFolderError with one line if anything is missing or corrupt."""
    from core.brain import Brain
    from core.brain.file import BrainFileError
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"run folder {str(folder)!r} does not exist")
    path = folder / CHECKPOINT
    if not path.is_file():
        raise RunFolderError(f"{str(folder)!r} has no {CHECKPOINT}: not a run folder, or it never checkpointed")
    try:
        state = pickle.loads(path.read_bytes())
    except Exception as exc:
        raise RunFolderError(f"{str(path)!r} is corrupt ({type(exc).__name__}); cannot resume") from None
    if not isinstance(state, dict) or state.get("version") not in (1, 2):
        raise RunFolderError(f"{str(path)!r} is not a Melvin checkpoint of a known version")
    brain = None
    if state.get("brain_file"):
        try:
            brain = Brain.load(folder / state["brain_file"])
        except (BrainFileError, OSError) as exc:
            raise RunFolderError(f"brain file of {str(folder)!r} is unusable: {exc}") from None
    return state, brain


def plot_progress(folder: Path, metrics: list[dict], title: str = "fitness") -> None:
    """progress.png: best/mean cost and the outcome classes of new evaluations per generation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    gens = [m["gen"] for m in metrics]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(gens, [m["best_cost"] for m in metrics], label="best")
    ax1.plot(gens, [m["mean_cost"] for m in metrics], label="mean", alpha=0.7)
    ax1.set_ylabel("cost (lower is better)")
    ax1.set_yscale("symlog", linthresh=1e-3)
    ax1.legend()
    ax1.set_title(title)
    classes = [c for c in (metrics[0]["outcomes"] if metrics else {}) if c != "OK"]
    bottom = [0.0] * len(gens)
    for c in classes:
        share = [(m["outcomes"][c] / max(1, sum(m["outcomes"].values()))) for m in metrics]
        if any(share):
            ax2.bar(gens, share, bottom=bottom, label=c, width=1.0)
            bottom = [b + s for b, s in zip(bottom, share)]
    ax2.set_ylabel("share of new cases")
    ax2.set_xlabel("generation")
    ax2.set_title("crash classes of new evaluations")
    if classes and any(bottom):
        ax2.legend(fontsize="small", ncol=4)
    fig.tight_layout()
    tmp = folder / ".progress.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, folder / "progress.png")
