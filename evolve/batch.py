"""``python -m evolve batch SPEC.toml``: a suite of tasks and seeds in one command.

The spec (:mod:`evolve.batch_spec`) lists tasks, seeds and run options. Each (task, seed) is
one run folder under ``DIR/runs/``, made by a child process running the run command itself
(:mod:`evolve.batch_child`), ``--jobs`` at once on this machine or, with ``--scheduler``, one
Dask task each on a fleet (:mod:`evolve.batch_dask`). The batch folder::

    DIR/spec.toml     the spec the batch started with (``--resume`` must be given the same)
    DIR/batch.json    every run's state: pending, running, solved, unsolved, failed (with its
                      reason), interrupted; rewritten atomically at each change
    DIR/logs/ID.log   each run's output
    DIR/runs/ID/      the run folders
    DIR/summary.csv, summary.md, summary.png   per task (:mod:`evolve.batch_summary`)

A run that fails (a task file that does not load, a crash, a hang past its timeout) is recorded
with its reason and the batch goes on. Ctrl-C or SIGTERM stops every running run at the end of
its generation, checkpointed, and exits 130 (143); ``--resume`` then finishes the batch: runs
that ended are not run again, runs that were under way resume from their checkpoints.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from evolve import config as C
from evolve import runfolder as rf
from evolve.batch_child import ENDED, STOP_GRACE, child_command, child_env, hang_limit  # noqa: F401
from evolve.batch_spec import RunSpec, Spec, SpecError, load_spec

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
FORMAT, VERSION = "melvin-batch", 1


def add_parser(subparsers) -> None:
    ap = subparsers.add_parser(
        "batch", help="run a suite of tasks and seeds (a spec file), locally or on a Dask fleet",
        description="Run every (task, seed) of a TOML spec (see suites/builtin.toml, and evolve/batch_spec.py "
                    "for the format) in its own process, each in a run folder of the batch folder, and "
                    "summarise them per task (summary.csv, summary.md, summary.png). Exit status: 0 when every "
                    "run ended solved or unsolved, 1 when some failed (batch.json says why), 2 for a bad spec "
                    "or folder, 130/143 when interrupted (continue with --resume).",
        formatter_class=C.HelpFormatter)
    ap.add_argument("spec", type=Path, help="the batch spec (TOML)")
    ap.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="batch folder (default runs/batch_<spec name>)")
    ap.add_argument("--resume", action="store_true",
                    help="finish the batch in DIR: ended runs stay, interrupted ones resume from their checkpoints")
    ap.add_argument("--retry-failed", action="store_true", help="with --resume: run failed runs again")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                    help="runs at once on this machine (each gets one thread)")
    ap.add_argument("--scheduler", default=None, metavar="ADDR",
                    help="tcp://HOST:8786: run each (task, seed) as a task of this Dask scheduler's workers "
                         "(a lost worker's run resumes from its checkpoint on another); --jobs is then unused")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.set_defaults(run=run)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Batch:
    """``batch.json``: the spec's runs and each one's state, saved at every change."""

    def __init__(self, folder: Path, spec: Spec, doc: dict | None = None):
        self.folder, self.spec = folder, spec
        old = {r["id"]: r for r in (doc or {}).get("runs", [])}
        self.runs: dict[str, dict] = {}
        self.specs: dict[str, RunSpec] = {r.id: r for r in spec.runs}
        for r in spec.runs:
            self.runs[r.id] = old.get(r.id) or {
                "id": r.id, "kind": r.kind, "task": r.task, "seed": r.seed, "folder": f"runs/{r.id}",
                "command": r.argv(Path("runs") / r.id), "state": "pending", "attempts": 0, "exit": None,
                "reason": None, "started": None, "ended": None, "seconds": None, "where": None}
        self.created = (doc or {}).get("created", now())
        self.fleet: dict | None = (doc or {}).get("fleet")     # scheduler and the names of its Dask objects

    def run_folder(self, run_id: str) -> Path:
        return self.folder / "runs" / run_id

    def log_file(self, run_id: str) -> Path:
        return self.folder / "logs" / f"{run_id}.log"

    def counts(self) -> dict:
        states = [r["state"] for r in self.runs.values()]
        return {s: states.count(s) for s in ("pending", "running", "interrupted", *ENDED)}

    def save(self) -> None:
        rf.write_json(self.folder / "batch.json", {
            "format": FORMAT, "version": VERSION, "spec": "spec.toml", "spec_sha256": self.spec.sha256,
            "created": self.created, "updated": now(), "counts": self.counts(), "fleet": self.fleet,
            "runs": list(self.runs.values())})

    def start(self, run_id: str, where: str) -> None:
        rec = self.runs[run_id]
        rec.update(state="running", attempts=rec["attempts"] + 1, started=now(), ended=None, exit=None,
                   reason=None, where=where)
        self.save()

    def end(self, run_id: str, exit_code: int | None, log_text: str, seconds: float, stopped: bool = False,
            hung_after: float | None = None) -> str:
        """Record how a run's process ended; returns its state."""
        rec = self.runs[run_id]
        state, reason = classify(self.run_folder(run_id), exit_code, log_text, stopped, hung_after)
        rec.update(state=state, exit=exit_code, reason=reason, ended=now(), seconds=round(seconds, 3))
        self.save()
        return state


def last_error(log_text: str) -> str:
    """The line of a run's output that says why it failed."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["no output"])[-1][:500]


def classify(folder: Path, exit_code: int | None, log_text: str, stopped: bool,
             hung_after: float | None) -> tuple[str, str | None]:
    """(state, reason) of a run whose process exited with ``exit_code`` (None: never ran)."""
    if hung_after is not None:
        return "failed", f"hung: no exit within {hung_after:g} s (the spec's timeout); killed"
    if exit_code in (130, 143) or (stopped and exit_code is not None and exit_code < 0):
        return "interrupted", None
    if exit_code == 0:
        from evolve.batch_summary import run_outcome
        outcome = run_outcome(folder)
        if outcome is None:
            return "failed", "exit 0 but no readable result.json (or optimize's report.json)"
        return ("solved" if outcome["solved"] else "unsolved"), None
    if exit_code is None:
        return "failed", last_error(log_text)
    if exit_code < 0:
        return "failed", f"killed by signal {-exit_code} ({last_error(log_text)})"
    return "failed", f"exit {exit_code}: {last_error(log_text)}"


class Bar:
    """The tqdm bar over runs, with the solved / unsolved / failed counts."""

    def __init__(self, batch: Batch, quiet: bool):
        self.batch, self.bar = batch, None
        if not quiet:
            from tqdm import tqdm
            c = batch.counts()
            self.bar = tqdm(total=len(batch.runs), initial=sum(c[s] for s in ENDED), desc="batch", unit="run",
                            file=sys.stderr, dynamic_ncols=True)
            self.update(0)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            c = self.batch.counts()
            self.bar.set_postfix(solved=c["solved"], unsolved=c["unsolved"], failed=c["failed"],
                                 running=c["running"], refresh=n == 0)
            if n:
                self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Child:
    def __init__(self, batch: Batch, spec: RunSpec):
        self.id, self.t0 = spec.id, time.monotonic()
        self.limit = hang_limit(spec)
        self.hung = self.stopped = False
        folder = batch.run_folder(spec.id)
        batch.log_file(spec.id).parent.mkdir(parents=True, exist_ok=True)
        self.log = open(batch.log_file(spec.id), "ab")
        self.proc = subprocess.Popen(child_command(folder, spec.argv(folder)), stdin=subprocess.PIPE,
                                     stdout=self.log, stderr=subprocess.STDOUT, env=child_env(),
                                     start_new_session=True)

    def terminate(self) -> None:
        if not self.stopped and self.proc.poll() is None:
            self.stopped = True
            self.stop_at = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)      # the run's own children (sandbox workers) too
        except ProcessLookupError:
            pass


def run_local(batch: Batch, todo: list[str], jobs: int, stop: list, bar: Bar) -> None:
    """Every run of ``todo``, ``jobs`` at once, each in a child process; on ``stop`` the running
    runs are stopped (checkpointed) and the rest stay pending."""
    queue, running = list(todo), {}
    try:
        while queue or running:
            while queue and len(running) < jobs and not stop:
                run_id = queue.pop(0)
                batch.start(run_id, "local")
                running[run_id] = _Child(batch, batch.specs[run_id])
                bar.update(0)
            time.sleep(0.1)
            for run_id, child in list(running.items()):
                if stop:
                    child.terminate()
                code = child.proc.poll()
                age = time.monotonic() - child.t0
                if code is None:
                    if child.limit is not None and age > child.limit and not child.hung:
                        child.hung = True
                        child.kill()
                    elif child.stopped and time.monotonic() - child.stop_at > STOP_GRACE:
                        child.kill()
                    continue
                child.log.close()
                child.proc.stdin.close()
                text = batch.log_file(run_id).read_text(errors="replace")[-20000:]
                state = batch.end(run_id, code, text, age, stopped=child.stopped,
                                  hung_after=child.limit if child.hung else None)
                del running[run_id]
                bar.update(1 if state in ENDED else 0)
            if stop and not running:
                break
    finally:
        for run_id, child in running.items():    # a second Ctrl-C: the children end at our exit
            batch.runs[run_id].update(state="interrupted")
        if running:
            batch.save()


def _open_folder(args, spec: Spec) -> tuple[Path, dict | None]:
    """The batch folder and its batch.json (None: a new batch); RunFolderError when it cannot be
    used (nothing is written)."""
    folder = args.out or Path("runs") / f"batch_{spec.path.stem}"
    doc = None
    if args.resume:
        try:
            doc = json.loads((folder / "batch.json").read_text())
            if doc.get("format") != FORMAT or doc.get("version") != VERSION or not isinstance(doc.get("runs"), list):
                raise ValueError("not a batch of this version")
        except (OSError, ValueError) as exc:
            raise rf.RunFolderError(f"{str(folder)!r} holds no batch to resume ({type(exc).__name__}: {exc})") from None
        if doc.get("spec_sha256") != spec.sha256:
            raise rf.RunFolderError(f"{spec.path} differs from {folder / 'spec.toml'}, the spec the batch started "
                                    f"with; resume with that one")
    elif args.retry_failed:
        raise ValueError("--retry-failed goes with --resume")
    elif folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise rf.RunFolderError(f"{str(folder)!r} already exists; use --resume to finish that batch, or another --out")
    return folder, doc


def run(args) -> int:
    """Entry point of ``python -m evolve batch``; returns the exit status."""
    try:
        if args.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
        if args.scheduler is not None and not args.scheduler.startswith(("tcp://", "tls://")):
            raise ValueError(f"--scheduler must be tcp://HOST:PORT, got {args.scheduler!r}")
        spec = load_spec(args.spec)
        folder, doc = _open_folder(args, spec)
        client = None
        if args.scheduler is not None:       # before anything is written: an unreachable one is exit 2
            from evolve import batch_dask
            if not getattr(args, "verbose", False):
                logging.getLogger("distributed").setLevel(logging.WARNING)
            client = batch_dask.connect(args.scheduler)
    except (SpecError, rf.RunFolderError, ValueError) as exc:
        return C.fail(str(exc))
    except RuntimeError as exc:              # batch_dask.FleetError
        return C.fail(str(exc))
    folder.mkdir(parents=True, exist_ok=True)
    lock = os.open(folder, os.O_RDONLY)        # held until this process exits, however it exits
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        if client is not None:
            client.close()
        return C.fail(f"another batch process is working in {str(folder)!r}")
    try:
        return _run_batch(args, spec, folder, doc, client)
    finally:
        os.close(lock)
        if client is not None:
            client.close()


def _run_batch(args, spec: Spec, folder: Path, doc: dict | None, client) -> int:
    if doc is None:
        rf.atomic_write(folder / "spec.toml", spec.text)
    batch = Batch(folder, spec, doc)
    redo = ("pending", "running", "interrupted", *(("failed",) if args.retry_failed else ()))
    todo = [run_id for run_id, rec in batch.runs.items() if rec["state"] in redo]
    for run_id in todo:
        batch.runs[run_id]["state"] = "pending"
    batch.save()
    bar = Bar(batch, args.quiet)
    try:
        with rf.deferred_interrupt() as stop:
            if client is not None:
                from evolve import batch_dask
                try:
                    batch_dask.run_fleet(batch, todo, client, stop, bar)
                except batch_dask.FleetError as exc:
                    return C.fail(str(exc))
            else:
                run_local(batch, todo, args.jobs, stop, bar)
    except KeyboardInterrupt:        # a second Ctrl-C: the runs checkpoint as this process exits
        stop = [signal.SIGINT]
    finally:
        bar.close()
        from evolve import batch_summary
        batch_summary.write(batch)
    counts = batch.counts()
    print(f"batch {folder}: {counts['solved']} solved, {counts['unsolved']} unsolved, {counts['failed']} failed"
          + (f", {counts['interrupted'] + counts['pending']} to finish (--resume)" if stop else "")
          + f" -> {folder / 'summary.md'}", file=sys.stderr)
    if stop:
        return 128 + stop[0]
    return 1 if counts["failed"] else 0
