"""Read-only access to a finished run folder, for replay, export and analysis.

Nothing here executes code or unpickles anything: a run folder may come from another machine
(a Jetson), so only its JSON files, ``best.s`` and the brain file (safetensors, checksummed)
are read. Every defect (missing folder or file, corrupt JSON, a genome record without its code,
an unknown ISA, a rank beyond the hall of fame) raises :class:`RunLoadError` with one line, which
the command-line tools turn into exit status 2.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.isa import ISAS
from evolve import tasks as T
from evolve import taskspec

#: Files replay and export need; analysis needs fewer (see :func:`load_run`).
REQUIRED = ("config.json", "result.json", "hall_of_fame.json", "best.s")
_GENOME_KEYS = ("asm", "code_hex")


class RunLoadError(ValueError):
    """A run folder (or a part of it) that cannot be used; one-line message."""


@dataclass
class Genome:
    """One recorded genome: its assembly lines, machine code and what the run said about it."""

    asm: list[str]
    code: bytes
    record: dict
    rank: int                      #: 0 = the run's best (result.json), k = hall of fame entry k

    @property
    def genes(self) -> list[tuple] | None:
        genes = self.record.get("genes")
        return [tuple(int(v) for v in g) for g in genes] if genes else None


@dataclass
class RunData:
    """The JSON content of one run folder, validated."""

    folder: Path
    config: dict                   #: the RunConfig fields
    task_info: dict                #: {"name", "arity", "description"}
    result: dict | None
    hall_of_fame: list[dict] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    best_s: list[str] | None = None
    environment: dict = field(default_factory=dict)

    @property
    def isa(self) -> str:
        return self.config["isa"]

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    def task(self) -> T.Task:
        """The task the run evolved code for (user tasks are reloaded from their file)."""
        try:
            return taskspec.get_task(self.config["task"], cc=self.config.get("cc"), cflags=self.config.get("cflags"))
        except T.TaskError as exc:
            raise RunLoadError(f"task of {str(self.folder)!r} is unusable here: {exc}") from None

    def genome(self, rank: int = 0) -> Genome:
        """Rank 0: the run's result (the validated solution when solved); k >= 1: the hall of
        fame's entry k (1-based), so ``--rank 1`` is the hall of fame's best."""
        if rank < 0:
            raise RunLoadError(f"--rank must be >= 0, got {rank}")
        if rank == 0:
            if self.result is None:
                raise RunLoadError(f"{str(self.folder)!r} has no result.json")
            record, where = self.result.get("best"), "result.json best"
        else:
            if rank > len(self.hall_of_fame):
                raise RunLoadError(f"--rank {rank} is beyond the hall of fame of {str(self.folder)!r} "
                                   f"({len(self.hall_of_fame)} entries)")
            record, where = self.hall_of_fame[rank - 1], f"hall of fame entry {rank}"
        return _genome(record, where, rank)

    def cases(self) -> tuple[np.ndarray, np.ndarray]:
        """``(train_x, valid_x)``, uint64 [n, arity]: the run's cases regenerated from its seed
        exactly as the engine draws them (training first, then validation, from one generator).
        Counterexamples the run added to its training set come from the validation set, so
        every case the run judged on is among these."""
        task = self.task()
        rng = np.random.default_rng(self.seed)
        train = T.training_cases(task, rng, int(self.config.get("n_train", 64)))
        valid = T.validation_cases(task, rng, int(self.config.get("n_valid", 10_000)))
        return train, valid


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunLoadError(f"{str(path)!r} is missing: not a finished run folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunLoadError(f"{str(path)!r} is corrupt JSON ({exc.__class__.__name__}: {exc})") from None
    except OSError as exc:
        raise RunLoadError(f"{str(path)!r} cannot be read: {exc.strerror}") from None


def _genome(record, where: str, rank: int) -> Genome:
    if not isinstance(record, dict) or any(k not in record for k in _GENOME_KEYS):
        raise RunLoadError(f"{where} is not a genome record (needs {', '.join(_GENOME_KEYS)})")
    asm = record["asm"]
    if not isinstance(asm, list) or not all(isinstance(x, str) for x in asm):
        raise RunLoadError(f"{where}: 'asm' must be a list of strings")
    try:
        code = bytes.fromhex(record["code_hex"])
    except (TypeError, ValueError):
        raise RunLoadError(f"{where}: 'code_hex' is not hexadecimal") from None
    return Genome(list(asm), code, record, rank)


def best_s_lines(text: str) -> list[str]:
    """Instruction lines of a ``best.s``/library ``.s`` file (comment and blank lines dropped)."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("//")]


def load_run(folder: str | Path, need: tuple[str, ...] = REQUIRED) -> RunData:
    """Load and validate the JSON files of ``folder``; ``need`` names the files that must exist
    (``config.json`` always; the others are read when present)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunLoadError(f"run folder {str(folder)!r} does not exist or is not a folder")
    for name in need:
        if not (folder / name).is_file():
            raise RunLoadError(f"{str(folder)!r} has no {name}: a missing or partial run folder")
    cfg_file = _read_json(folder / "config.json")
    if not isinstance(cfg_file, dict) or not isinstance(cfg_file.get("config"), dict):
        raise RunLoadError(f"{str(folder / 'config.json')!r} has no 'config' object")
    config = cfg_file["config"]
    for key in ("task", "isa"):
        if not isinstance(config.get(key), str):
            raise RunLoadError(f"{str(folder / 'config.json')!r}: config.{key} is missing")
    if config["isa"] not in ISAS:
        raise RunLoadError(f"{str(folder)!r} holds a genome for ISA {config['isa']!r}; this Melvin "
                           f"knows {', '.join(sorted(ISAS))}")
    result = _read_json(folder / "result.json") if (folder / "result.json").is_file() else None
    if result is not None:
        if not isinstance(result, dict):
            raise RunLoadError(f"{str(folder / 'result.json')!r} is not a JSON object")
        if result.get("isa", config["isa"]) != config["isa"]:
            raise RunLoadError(f"result.json is for ISA {result.get('isa')!r} but config.json says "
                               f"{config['isa']!r}")
    hof = _read_json(folder / "hall_of_fame.json") if (folder / "hall_of_fame.json").is_file() else []
    if not isinstance(hof, list):
        raise RunLoadError(f"{str(folder / 'hall_of_fame.json')!r} is not a JSON list")
    metrics = []
    if (folder / "metrics.jsonl").is_file():
        for i, line in enumerate((folder / "metrics.jsonl").read_text().splitlines()):
            if line.strip():
                try:
                    metrics.append(json.loads(line))
                except json.JSONDecodeError:
                    raise RunLoadError(f"{str(folder / 'metrics.jsonl')!r} line {i + 1} is corrupt JSON") from None
    best_s = best_s_lines((folder / "best.s").read_text()) if (folder / "best.s").is_file() else None
    task_info = cfg_file.get("task") if isinstance(cfg_file.get("task"), dict) else {"name": config["task"]}
    return RunData(folder, config, task_info, result, hof, metrics, best_s,
                   cfg_file.get("environment") or {})
