"""The run folder: every file of one run, written atomically (PySR's ``outputs/<run_id>``).

Files: ``config.json`` (parameters, versions, host); ``metrics.jsonl`` (a line per generation,
appended and flushed as each generation ends, fsynced with every checkpoint); the checkpoint,
``checkpoint.json`` plus the arrays file it names, ``checkpoint-<gen>-<sha>.safetensors``
(:mod:`evolve.checkpoint` says what each holds; the brain travels inside the arrays file as the
bytes of its brain file, so a checkpoint is one consistent unit); ``progress.png``; the final
brain file; and the results :mod:`evolve.results` writes (``result.json``,
``hall_of_fame.json``, ``best.s``). Nothing is pickled: resuming reads JSON and arrays only.

Consistency at every instant: the arrays file is written first (atomically, under a name no
earlier checkpoint used unless its content is the same), then ``checkpoint.json``, which names it
and records its SHA-256 and size, replaces the old one by an atomic rename: that rename is the
commit. Arrays files it no longer names are removed after. A kill at any instant leaves the old
checkpoint or the new one, each complete; an arrays file that is truncated or altered no longer
matches its checksum and is refused. ``metrics.jsonl`` is fsynced before the commit, so every
checkpoint's generation has its line on disk; on resume, lines after it (the resumed run writes
them again) and a torn last line are cut off (:func:`resume_metrics`).

The brain: one file per folder, the final brain file (written by the run's end); during the run
the checkpoint carries the brain itself, so no brain file has to agree with a checkpoint.

Folders of earlier versions hold ``checkpoint.pkl`` (and ``brain-<gen>.melvin``): a pickle runs
code when loaded, so they are refused unless ``--resume`` is given ``--trust-pickle``; then
the pickle is loaded once and the first new checkpoint removes it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from core.atomic import atomic_write  # re-exported: rf.atomic_write
from evolve.checkpoint import plain

log = logging.getLogger(__name__)
#: the checkpoint's document (it names the arrays file)
CHECKPOINT = "checkpoint.json"
#: a line per generation
METRICS = "metrics.jsonl"
#: pickled checkpoints of earlier versions (single run, island run)
LEGACY = ("checkpoint.pkl", "islands.pkl")
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
    atomic_write(path, json.dumps(obj, indent=2, default=plain) + "\n")


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


def write_checkpoint(folder: Path, stem: str, doc: dict, arrays: dict, tag: int) -> None:
    """Arrays file first, then ``<stem>.json`` naming it (the commit), then stale files out."""
    from safetensors.numpy import save

    from evolve.checkpoint import dumps
    folder = Path(folder)
    blob = save(arrays)
    digest = hashlib.sha256(blob).hexdigest()
    name = f"{stem}-{tag:06d}-{digest[:12]}.safetensors"
    atomic_write(folder / name, blob)
    doc = dict(doc, arrays={"file": name, "sha256": digest, "bytes": len(blob)})
    atomic_write(folder / f"{stem}.json", dumps(doc) + "\n")
    for old in folder.glob(f"{stem}-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    for stale in [*folder.glob(f".{stem}*.tmp"), *(folder / n for n in LEGACY), *folder.glob("brain-*.melvin")]:
        stale.unlink(missing_ok=True)


def read_checkpoint(folder: Path, stem: str) -> tuple[dict, dict]:
    """``(document, arrays)`` of ``<stem>.json`` and the arrays file it names; RunFolderError
    with one line when either is missing, corrupt, truncated or altered (nothing is written)."""
    from safetensors.numpy import load
    path = folder / f"{stem}.json"
    try:
        doc = json.loads(path.read_text())
        ref = doc["arrays"]
        name, digest, size = ref["file"], ref["sha256"], ref["bytes"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RunFolderError(f"{str(path)!r} is corrupt ({type(exc).__name__}); cannot resume") from None
    if not isinstance(name, str) or Path(name).name != name or not name.startswith(f"{stem}-"):
        raise RunFolderError(f"{str(path)!r} names no arrays file of this folder; cannot resume")
    try:
        blob = (folder / name).read_bytes()
    except OSError:
        raise RunFolderError(f"{str(folder / name)!r}, the arrays of {str(path)!r}, is missing; cannot resume") from None
    if len(blob) != size or hashlib.sha256(blob).hexdigest() != digest:
        raise RunFolderError(f"{str(folder / name)!r} does not match the checksum {path.name} records "
                             f"(truncated or altered); cannot resume")
    try:
        return doc, load(blob)
    except Exception as exc:    # safetensors raises its own error types
        raise RunFolderError(f"{str(folder / name)!r} is not a safetensors file ({type(exc).__name__})") from None


def save_checkpoint(folder: Path, state: dict, brain) -> None:
    """The engine's checkpoint (``checkpoint.json`` + its arrays file, the brain inside)."""
    from evolve import checkpoint as ckpt
    brain_bytes = brain.to_bytes({"generation": state["gen"]}) if brain is not None else None
    doc, arrays = ckpt.encode(state, brain_bytes)
    write_checkpoint(folder, "checkpoint", doc, arrays, state["gen"])


def load_checkpoint(folder: Path, trust_pickle: bool = False):
    """``(state, brain or None)``; RunFolderError with one line if anything is missing or corrupt,
    or if the folder holds only an old pickled checkpoint and ``trust_pickle`` is false."""
    from core.brain import Brain
    from core.brain.file import BrainFileError
    from evolve import checkpoint as ckpt
    folder = Path(folder)
    if not folder.is_dir():
        raise RunFolderError(f"run folder {str(folder)!r} does not exist")
    if not (folder / CHECKPOINT).is_file():
        if (folder / LEGACY[0]).is_file():
            if not trust_pickle:
                raise RunFolderError(refuse_pickle(folder / LEGACY[0]))
            return _load_trusted_pickle(folder)
        raise RunFolderError(f"{str(folder)!r} has no {CHECKPOINT}: not a run folder, or it never checkpointed")
    doc, arrays = read_checkpoint(folder, "checkpoint")
    try:
        state, brain_bytes = ckpt.decode(doc, arrays)
    except ckpt.CheckpointError as exc:
        raise RunFolderError(f"{str(folder / CHECKPOINT)!r}: {exc}; cannot resume") from None
    brain = None
    if brain_bytes is not None:
        try:
            brain = Brain.from_bytes(brain_bytes, f"{folder / doc['arrays']['file']} (brain)")
        except BrainFileError as exc:
            raise RunFolderError(f"brain of {str(folder)!r} is unusable: {exc}") from None
    return state, brain


def refuse_pickle(path: Path) -> str:
    """The one line that refuses an old pickled checkpoint."""
    return (f"{str(path)!r} is a pickle from an earlier Melvin: loading it runs code from the folder, so it is "
            f"refused; if you made it yourself, resume with --trust-pickle (it is then converted)")


def _load_trusted_pickle(folder: Path):
    """An earlier version's ``checkpoint.pkl`` and its ``brain-<gen>.melvin`` (only with
    ``--trust-pickle``: unpickling runs whatever the file says)."""
    import pickle

    from core.brain import Brain
    from core.brain.file import BrainFileError
    path = folder / LEGACY[0]
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


# --------------------------------------------------------------------- metrics.jsonl
class MetricsLog:
    """A metrics file opened for appending: :meth:`append` writes one line and flushes it (a
    reader sees whole lines, up to the last one), :meth:`sync` puts them on disk (before each
    checkpoint). A context manager."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh = open(self.path, "a", encoding="utf-8")

    def append(self, line: dict) -> None:
        self._fh.write(json.dumps(line, default=plain) + "\n")
        self._fh.flush()

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: Path) -> list[dict]:
    """Every complete line of a metrics file (a torn last line left out)."""
    return _complete_lines(Path(path))[0]


def sample_metrics(path: Path, at_most: int = 5000) -> list[dict]:
    """About ``at_most`` evenly spaced complete lines of a metrics file, the last one included,
    parsed one at a time: a long run's file never has to fit in memory as objects."""
    try:
        with open(path, "rb") as fh:
            n = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except FileNotFoundError:
        return []
    step = max(1, -(-n // at_most))
    out = []
    with open(path, "rb") as fh:
        for i, raw in enumerate(fh):
            if (i % step == 0 or i == n - 1) and raw.endswith(b"\n"):
                out.append(json.loads(raw))
    return out


def _complete_lines(path: Path, key: str | None = None, last: int | None = None) -> tuple[list, int]:
    """Lines (with ``line[key] <= last``) up to the first torn or later one, and their bytes."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    lines, end = [], 0
    while True:
        stop = data.find(b"\n", end)
        if stop < 0:
            break
        try:
            line = json.loads(data[end:stop])
        except (json.JSONDecodeError, UnicodeDecodeError):
            break
        if key is not None and not (isinstance(line, dict) and isinstance(line.get(key), int) and line[key] <= last):
            break
        lines.append(line)
        end = stop + 1
    return lines, end


def resume_metrics(path: Path, key: str, last: int) -> list[dict]:
    """Cut a metrics file back to the checkpoint's: the complete lines up to the one whose
    ``key`` is ``last`` (a torn line, and lines the resumed run will write again, are dropped).
    Returns the lines kept; RunFolderError when the checkpoint's line is not there."""
    path = Path(path)
    lines, end = _complete_lines(path, key, last)
    if not lines or lines[-1][key] != last:
        raise RunFolderError(f"{str(path)!r} has no complete line for {key} {last}, the checkpoint's; cannot resume")
    if end != path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())
    return lines


def draw_progress(folder: Path, title: str = "fitness") -> None:
    """progress.png of a run folder, from about 5,000 lines of its metrics file, drawn by a child
    process: matplotlib and the lines cost ~50 MiB, which the run's own process would carry
    from then on (a long run's memory must stay flat, issue 13); the child's is freed when it
    exits. A failure is logged, not raised: the run's results stand without the picture."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    code = ("import sys; from pathlib import Path; from evolve import runfolder as rf; "
            "f = Path(sys.argv[1]); lines = rf.sample_metrics(f / rf.METRICS); "
            "lines and rf.plot_progress(f, lines, sys.argv[2])")
    proc = subprocess.run([sys.executable, "-c", code, str(folder), title], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        log.warning("progress.png not drawn: %s", (proc.stderr.strip().splitlines() or ["no message"])[-1])


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
    ax1.legend(loc="upper right")
    ax1.set_title(title)
    # Stacked areas, one polygon per class: a bar per generation and class (40,000 patches for
    # 5,000 points) cost a long run's end ~150 MiB and a minute (issue 13's soak).
    totals = [max(1, sum(m["outcomes"].values())) for m in metrics]
    shares = {c: [m["outcomes"][c] / t for m, t in zip(metrics, totals)]
              for c in (metrics[0]["outcomes"] if metrics else {}) if c != "OK"}
    shares = {c: share for c, share in shares.items() if any(share)}
    if shares:
        ax2.stackplot(gens, *shares.values(), labels=list(shares), step="mid")
        ax2.legend(fontsize="small", ncol=4, loc="upper right")
    ax2.set_ylabel("share of new cases")
    ax2.set_xlabel("generation")
    ax2.set_title("crash classes of new evaluations")
    fig.tight_layout()
    tmp = folder / ".progress.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, folder / "progress.png")
