"""Batch specifications: a TOML file of tasks, seeds and run options, checked before anything runs.

A spec (``suites/builtin.toml`` is one)::

    seeds = [0, 1, 2]               # or seeds = 3 (0, 1, 2); a task may give its own
    timeout = 900                   # batch only: seconds before a run counts as hung (default:
                                    # 3 x its time limit + 300 s; none without a time limit)
    c_reference = "file.c"          # batch only: the summary shows gcc -O2's count of the
                                    # function named like each task's
    [defaults]                      # options of every run: any flag of `python -m evolve run`
    time_limit = 60                 # (--time-limit), spelled with _ or -; true/false for a
    pop = 300                       # switch such as no_brain or keep_going
    optimize = 15
    [[task]]
    task = "clear_lowest"           # whatever `run --task` accepts: a built-in name or
    [[task]]                        # path:function (.py, and .c once the compiler task exists),
    task = "hackers_delight.py:p19" # a path relative to the spec's folder
    seeds = [0]
    pop = 500                       # options of this task override the defaults
    [[task]]
    optimize = "target.s"           # a target of `python -m evolve optimize` (needs that
                                    # subcommand; its own flags are the options)

Every option is checked against the parser of the subcommand that will run it and then through
:class:`evolve.config.RunConfig`'s own checks, so a spec that would fail in its first run fails
here, with one line naming the file, the line and the table. A task *file* that exists but does
not load (a syntax error, a missing function) is a run failure, recorded by the batch, not a
spec error: the other runs go on.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from evolve.tasks import BUILTIN

#: Keys of the batch itself (never passed to a run).
BATCH_KEYS = ("seeds", "timeout", "c_reference")
#: Flags a batch sets itself, or that make no sense per run.
RESERVED = ("--task", "--seed", "--out", "--resume", "--trust-pickle", "--quiet", "--islands", "--scheduler",
            "--migration-every", "--migrants", "--help")


class SpecError(ValueError):
    """A spec that cannot run; the message is one line naming the place in the file."""


@dataclass
class RunSpec:
    """One (task, seed) of a batch: what the child process runs."""

    id: str                      # unique in the batch: the run folder's name
    kind: str                    # "task" (python -m evolve run) or "optimize"
    task: str                    # the task string as given (a path as written in the spec)
    target: str                  # what the child gets: a built-in name or an absolute path
    seed: int
    options: list[str] = field(default_factory=list)     # flags after the subcommand, seed included
    quiet: bool = True                                   # whether the subcommand takes --quiet
    time_limit: float | None = None
    timeout: float | None = None
    c_reference: str | None = None                       # absolute path of a C file, or None

    def argv(self, folder: Path) -> list[str]:
        """The command line of a new run writing ``folder``."""
        quiet = ["--quiet"] if self.quiet else []
        if self.kind == "optimize":
            return ["optimize", self.target, *self.options, *quiet, "--out", str(folder)]
        return ["run", "--task", self.target, *self.options, *quiet, "--out", str(folder)]


@dataclass
class Spec:
    path: Path
    text: str
    runs: list[RunSpec]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def subcommand_parser(name: str) -> argparse.ArgumentParser | None:
    """The parser of ``python -m evolve <name>``, or None when this Melvin has no such command."""
    from evolve.__main__ import build_parser
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


class _Locator:
    """Line numbers of tables and keys in the spec's text (tomllib gives none)."""

    def __init__(self, path: Path, text: str):
        self.path, self.lines = path, text.splitlines()

    def _table_start(self, index: int | None, table: str | None) -> tuple[int, int]:
        """[start, end) line indices of the ``index``-th ``[[task]]`` (or ``[table]``; None: top)."""
        heads = [i for i, line in enumerate(self.lines) if re.match(r"^\s*\[", line)]
        if table is None:
            return 0, heads[0] if heads else len(self.lines)
        if index is None:
            pattern = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\]")
            found = [i for i in heads if pattern.match(self.lines[i])]
        else:
            pattern = re.compile(rf"^\s*\[\[\s*{re.escape(table)}\s*\]\]")
            found = [i for i in heads if pattern.match(self.lines[i])]
            found = found[index:index + 1]
        if not found:
            return 0, 0
        start = found[0]
        end = next((i for i in heads if i > start), len(self.lines))
        return start, end

    def place(self, table: str | None = None, index: int | None = None, key: str | None = None) -> str:
        where = "top level" if table is None else (f"[{table}]" if index is None else f"[[{table}]] {index + 1}")
        start, end = self._table_start(index, table)
        line = start + 1 if table is not None and end > start else None
        if key is not None:
            spelled = "[-_]".join(map(re.escape, re.split(r"[-_]", key)))      # time_limit or time-limit
            pattern = re.compile(rf"^\s*[\"']?{spelled}[\"']?\s*=")
            hit = next((i for i in range(start, end) if pattern.match(self.lines[i])), None)
            if hit is not None:
                line = hit + 1
            where += f", {key!r}"
        return f"{self.path}:{line}: {where}" if line else f"{self.path}: {where}"


def _flag_table(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings if opt.startswith("--")}


def _option_argv(key: str, value, actions: dict, where: str) -> list[str]:
    """The flags one spec option stands for; SpecError when the subcommand has no such flag or
    the value is of the wrong kind."""
    flag = "--" + key.replace("_", "-")
    action = actions.get(flag)
    if action is None or flag in RESERVED:
        known = sorted(k[2:].replace("-", "_") for k in actions if k not in RESERVED)
        why = "set by the batch itself" if flag in RESERVED else f"not an option (known: {', '.join(known)})"
        raise SpecError(f"{where}: {why}")
    if action.nargs == 0:        # a switch: store_true and the like
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {value!r}")
        return [flag] if value else []
    if isinstance(value, (dict, list)) or isinstance(value, bool):
        raise SpecError(f"{where}: expected a single value, got {value!r}")
    kind = action.type
    if kind in (int, float):
        if not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise SpecError(f"{where}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    elif kind is not None and kind is not str and not isinstance(value, str):
        value = str(value)
    if action.choices is not None and value not in action.choices:
        raise SpecError(f"{where}: must be one of {', '.join(map(str, action.choices))}, got {value!r}")
    return [flag, str(value)]


def _timeout(value, where: str):
    """A ``timeout`` (positive seconds) or None; SpecError naming ``where`` otherwise."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
        raise SpecError(f"{where}: expected positive seconds, got {value!r}")
    return value


def _c_reference(value, base: Path, where: str) -> str | None:
    """A ``c_reference`` C file (resolved against the spec's folder) or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not _resolve(value, base).is_file():
        raise SpecError(f"{where}: no such C file {value!r}")
    return str(_resolve(value, base).resolve())


def _seeds(value, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                  for s in value):
        if len(set(value)) != len(value):
            raise SpecError(f"{where}: a seed is listed twice")
        return list(value)
    raise SpecError(f"{where}: expected a count >= 1 or a list of distinct seeds >= 0, got {value!r}")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _resolve(path_text: str, base: Path) -> Path:
    path = Path(path_text).expanduser()
    return path if path.is_absolute() else (base / path)


def _task_target(task: str, base: Path, where: str) -> tuple[str, str]:
    """(what the child gets, the run id's stem) of a task string; SpecError when it names no
    built-in and no existing file."""
    if task in BUILTIN:
        return task, task
    path_text, colon, func = task.rpartition(":")
    if not colon or not path_text or not func:
        raise SpecError(f"{where}: unknown task {task!r}: a built-in ({', '.join(sorted(BUILTIN))}) "
                        f"or path/file.py:function")
    path = _resolve(path_text, base)
    if not path.is_file():
        raise SpecError(f"{where}: task file {str(path)!r} does not exist")
    return f"{path.resolve()}:{func}", f"{path.stem}.{func}"


def _optimize_target(text: str, function, base: Path, where: str) -> tuple[str, str]:
    """(what ``optimize`` gets, the run id's stem) of an optimize entry: a file (relative to the
    spec) or hex words; SpecError when it is neither."""
    path = _resolve(text, base)
    if path.exists():
        target, stem = str(path.resolve()), f"opt-{path.stem}"
    elif re.fullmatch(r"\s*[0-9a-fA-F]{8}(\s+[0-9a-fA-F]{8})*\s*", text):
        target, stem = text, f"opt-hex-{text.split()[0].lower()}"
    else:
        raise SpecError(f"{where}: optimize target {str(path)!r} does not exist (nor is it hex words)")
    return target, (f"{stem}.{function}" if isinstance(function, str) and function else stem)


def _check_config(options: list[str], target: str, parser: argparse.ArgumentParser, where: str,
                  place_of) -> float | None:
    """Parse a run's flags as ``run`` will, through RunConfig's checks; its time limit. A message
    that names a flag is placed at that option's key (``place_of(key)``)."""
    from evolve import config as C
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = parser.parse_args(["--task", target, *options])
    except SystemExit:
        message = (err.getvalue().strip().splitlines() or ["invalid options"])[-1]
        raise SpecError(f"{where}: {message.split(': error: ')[-1]}") from None
    try:
        cfg = C.config_from_args(args)
        cfg.validate()
    except ValueError as exc:
        flag = re.match(r"^(--[a-z][a-z-]*)", str(exc))
        if flag and flag.group(1) in options:
            where = place_of(flag.group(1)[2:].replace("-", "_"))
        raise SpecError(f"{where}: {exc}") from None
    return cfg.time_limit


def load_spec(path: Path) -> Spec:
    """The runs of the spec at ``path``; SpecError (one line, naming the place) on any defect."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the spec ({type(exc).__name__}: {exc})") from None
    try:
        import tomllib
    except ImportError:          # Python 3.10: the same parser as the tomli package
        try:
            import tomli as tomllib
        except ImportError:
            raise SpecError(f"{path}: reading a spec needs Python 3.11 (tomllib) or `pip install tomli`") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        line = f":{found.group(1)}" if found else ""
        raise SpecError(f"{path}{line}: not valid TOML: {str(exc).split(' (at line')[0]}") from None
    loc = _Locator(path, text)
    base = path.resolve().parent
    for key in doc:
        if key not in (*BATCH_KEYS, "defaults", "task"):
            raise SpecError(f"{loc.place(key=key)}: unknown key (a spec has {', '.join(BATCH_KEYS)}, "
                            f"[defaults] and [[task]] tables)")
    defaults = doc.get("defaults", {})
    tasks = doc.get("task", [])
    if not isinstance(defaults, dict):
        raise SpecError(f"{loc.place(key='defaults')}: expected a table [defaults]")
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, dict) for t in tasks):
        raise SpecError(f"{path}: no [[task]] tables: a spec lists at least one task")
    seeds = _seeds(doc.get("seeds", [0]), loc.place(key="seeds"))
    timeout = _timeout(doc.get("timeout"), loc.place(key="timeout"))
    c_reference = _c_reference(doc.get("c_reference"), base, loc.place(key="c_reference"))
    for key in defaults:
        if key in ("task", *BATCH_KEYS):
            raise SpecError(f"{loc.place('defaults', key=key)}: not a default (set it at the top level or per task)")
    parsers: dict = {}
    runs: list[RunSpec] = []
    ids: dict[str, str] = {}
    for n, entry in enumerate(tasks):
        kinds = [k for k in ("task", "optimize") if isinstance(entry.get(k), str)]
        if len(kinds) != 1:
            raise SpecError(f"{loc.place('task', n)}: give exactly one of task = \"...\" or optimize = \"target\"")
        kind = kinds[0]
        where = loc.place("task", n, kind)
        if kind not in parsers:
            parsers[kind] = subcommand_parser("run" if kind == "task" else "optimize")
        parser = parsers[kind]
        if parser is None:
            raise SpecError(f"{where}: optimize targets need the `python -m evolve optimize` command, "
                            f"which this Melvin does not have")
        actions = _flag_table(parser)
        if "--out" not in actions:
            raise SpecError(f"{where}: `python -m evolve {'run' if kind == 'task' else kind}` has no --out; "
                            f"a batch cannot give it a run folder")
        if kind == "task":
            target, stem = _task_target(entry["task"], base, where)
        else:
            target, stem = _optimize_target(entry["optimize"], entry.get("function", defaults.get("function")),
                                            base, where)
        name = entry.get("name", stem)
        if not isinstance(name, str) or not name:
            raise SpecError(f"{loc.place('task', n, 'name')}: expected a non-empty string")
        own_seeds = _seeds(entry["seeds"], loc.place("task", n, "seeds")) if "seeds" in entry else seeds
        merged = {**defaults, **{k: v for k, v in entry.items() if k not in (kind, "name", *BATCH_KEYS)}}
        options: list[str] = []
        for key, value in merged.items():
            table = ("task", n) if key in entry else ("defaults", None)
            options += _option_argv(key, value, actions, loc.place(table[0], table[1], key))
        own_timeout = _timeout(entry.get("timeout", timeout), loc.place("task", n, "timeout"))
        own_c = _c_reference(entry.get("c_reference"), base, loc.place("task", n, "c_reference"))
        time_limit = None
        if kind == "optimize" and "--time-limit" in actions:
            given = next((options[i + 1] for i, o in enumerate(options) if o == "--time-limit"), None)
            time_limit = float(given if given is not None else actions["--time-limit"].default) or None
        if kind == "task":
            time_limit = _check_config(options, target, parser, loc.place("task", n),
                                       lambda k: loc.place(*(("task", n) if k in {e.replace("-", "_") for e in entry}
                                                                 else ("defaults", None)), k))
        for seed in own_seeds:
            run_id = f"{_safe(name)}-s{seed}"
            if run_id in ids:
                raise SpecError(f"{loc.place('task', n)}: run {run_id!r} is also made by {ids[run_id]} "
                                f"(give one of them a name = \"...\")")
            ids[run_id] = f"[[task]] {n + 1}"
            seeded = [*options, "--seed", str(seed)] if "--seed" in actions else list(options)
            runs.append(RunSpec(run_id, kind, entry[kind], target, seed, seeded, quiet="--quiet" in actions,
                                time_limit=time_limit, timeout=own_timeout, c_reference=own_c or c_reference))
    return Spec(path, text, runs)
