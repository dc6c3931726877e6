"""A batch on a Dask fleet: each (task, seed) is one Dask task, run by a worker in a child process.

The task (:func:`remote_run`) runs the same child as a local batch (:mod:`evolve.batch_child`)
in a folder of the worker's own temporary space, so workers need no shared file system: a task
file missing on the worker travels with the task (written to the same path on every worker,
``<tmp>/melvin-batch-tasks/<batch>/``, so that a checkpoint naming it resumes anywhere). While
the run goes, each new checkpoint (``config.json``, ``checkpoint.json``, its arrays file,
``metrics.jsonl``) is put in a Dask ``Variable`` of the scheduler; the coordinator copies it
into the batch folder now and then, and a task started again after its worker was lost (by the
scheduler, or resubmitted by the coordinator after ``KilledWorker``) resumes from it, or from
the batch folder's copy when that one is later, instead of starting over. When the run ends the task returns every file of its folder, which the
coordinator writes into ``DIR/runs/ID/``.

Ctrl-C (SIGTERM) sets a Dask ``Event``: running tasks stop their runs (checkpointed) and return
them, tasks not yet started return at once, and the batch exits 130 (143), to be resumed.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from evolve.batch_child import ENDED, STOP_GRACE, child_command, child_env, hang_limit

log = logging.getLogger(__name__)
EVENT_TOPIC = "melvin-batch"
#: Submissions of one run after the scheduler gave up on it (KilledWorker), before it fails.
MAX_ATTEMPTS = 4
#: Seconds between the coordinator's copies of running runs' checkpoints into the batch folder.
COPY_EVERY = 5.0
RESUMABLE = ("config.json", "checkpoint.json", "metrics.jsonl")


class FleetError(RuntimeError):
    """A scheduler that cannot be reached; one-line message."""


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """The files a run resumes from (its checkpoint as committed, with the arrays it names), or
    None when the folder has no complete checkpoint (a commit under way: try again)."""
    import json
    try:
        doc = (folder / "checkpoint.json").read_bytes()
        name = json.loads(doc)["arrays"]["file"]
        files = {"checkpoint.json": doc, name: (folder / name).read_bytes()}
        for other in ("config.json", "metrics.jsonl"):
            files[other] = (folder / other).read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return files


def _checkpoint_gen(files: dict) -> int:
    """The generation of a snapshot's checkpoint (-1: unreadable)."""
    import json
    try:
        return int(json.loads(files["checkpoint.json"])["gen"])
    except (KeyError, ValueError, TypeError):
        return -1


def _write_files(folder: Path, files: dict[str, bytes], clear: bool) -> None:
    from core.atomic import atomic_write
    if clear and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(files, key=lambda n: n == "checkpoint.json")       # the document last: the commit
    for name in names:
        if Path(name).name != name or name.startswith("."):
            continue                                                   # only plain files of the folder
        atomic_write(folder / name, files[name])


def _all_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def _place_task(argv: list[str], task_file: tuple[str, str, bytes] | None, token: str) -> list[str]:
    """``argv`` with the task file at a path this worker has (shipped when it is missing here)."""
    if task_file is None:
        return argv
    path, func, data = task_file
    if Path(path).is_file():
        return argv
    local = Path(tempfile.gettempdir()) / "melvin-batch-tasks" / token / Path(path).name
    local.parent.mkdir(parents=True, exist_ok=True)
    if not local.is_file() or local.read_bytes() != data:
        local.write_bytes(data)
    return [f"{local}:{func}" if a == f"{path}:{func}" else a for a in argv]


def remote_run(run_id: str, argv: list[str], token: str, initial: dict | None, task_file, limit: float | None) -> dict:
    """The Dask task: bring run ``run_id`` to its end in a child process on this worker.

    Returns ``exit`` (the child's status; None when the batch was stopping before it started),
    ``files`` (the run folder's), ``log``, ``where`` (the worker), ``seconds``, ``hung``, ``stopped``.
    """
    from distributed import Event, Variable, get_worker
    worker = get_worker()
    worker.log_event(EVENT_TOPIC, {"batch": token, "run": run_id, "worker": worker.address, "pid": os.getpid(), "time": time.time()})
    stop, var = Event(f"melvin-batch-{token}-stop"), Variable(f"melvin-batch-{token}-{run_id}")
    out = {"exit": None, "files": {}, "log": "", "where": worker.address, "seconds": 0.0, "hung": False,
           "stopped": False}
    if stop.is_set():
        return out
    try:
        files = var.get(timeout=0.5)
    except (TimeoutError, OSError):
        files = None
    files = max((f for f in (files, initial) if f), key=_checkpoint_gen, default=None)
    tmp = Path(tempfile.mkdtemp(prefix="melvin-batch-"))
    folder = tmp / run_id
    try:
        if files:
            _write_files(folder, files, clear=False)
        argv = _place_task(argv, task_file, token)
        i = argv.index("--out")
        argv = [*argv[:i + 1], str(folder), *argv[i + 2:]]
        t0 = time.monotonic()
        with open(tmp / "log", "wb") as log_fh:
            proc = subprocess.Popen(child_command(folder, argv), stdin=subprocess.PIPE, stdout=log_fh,
                                    stderr=subprocess.STDOUT, env=child_env(), start_new_session=True)
            shipped, stop_at = None, None
            while proc.poll() is None:
                time.sleep(0.5)
                doc = (folder / "checkpoint.json")
                stamp = doc.stat().st_mtime_ns if doc.is_file() else None
                if stamp != shipped and stamp is not None:
                    snap = snapshot(folder)
                    if snap is not None:
                        var.set(snap)
                        shipped = stamp
                if stop_at is None and stop.is_set():
                    out["stopped"], stop_at = True, time.monotonic()
                    proc.send_signal(signal.SIGTERM)
                too_long = limit is not None and time.monotonic() - t0 > limit
                if too_long or (stop_at is not None and time.monotonic() - stop_at > STOP_GRACE):
                    out["hung"] = bool(too_long)
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        out.update(exit=proc.returncode, seconds=time.monotonic() - t0,
                   files=_all_files(folder) if folder.is_dir() else {},
                   log=(tmp / "log").read_bytes().decode(errors="replace")[-20000:])
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _task_file(target: str) -> tuple[str, str, bytes] | None:
    path, colon, func = target.rpartition(":")
    if not colon or not Path(path).is_file():
        return None
    return path, func, Path(path).read_bytes()


def connect(scheduler: str, timeout: float = 8.0):
    """A client of the scheduler at ``scheduler``; FleetError within ``timeout`` s when unreachable."""
    from distributed import Client
    try:
        return Client(scheduler, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise FleetError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:.0f} s "
                         f"({type(exc).__name__}); is `dask scheduler` running there?") from None


def run_fleet(batch, todo: list[str], client, stop: list, bar) -> None:
    """Every run of ``todo`` as a Dask task of ``client``'s scheduler (the client is closed after)."""
    from distributed import Event, Variable, wait
    from distributed.client import FutureCancelledError
    try:
        from distributed.scheduler import KilledWorker
    except ImportError:     # pragma: no cover - older layouts
        from distributed import KilledWorker
    scheduler = client.scheduler.address
    token = hashlib.sha256(f"{batch.folder.resolve()}|{batch.created}".encode()).hexdigest()[:16]
    batch.fleet = {"scheduler": scheduler, "token": token, "checkpoints": f"melvin-batch-{token}-<run id>",
                   "stop": f"melvin-batch-{token}-stop"}
    stop_event = Event(f"melvin-batch-{token}-stop", client=client)
    stop_event.clear()
    futures: dict = {}
    copied: dict[str, bytes] = {}

    def submit(run_id: str) -> None:
        spec = batch.specs[run_id]
        folder = batch.run_folder(run_id)
        initial = snapshot(folder) if folder.is_dir() else None
        batch.start(run_id, "dask")
        attempt = batch.runs[run_id]["attempts"]
        fut = client.submit(remote_run, run_id, spec.argv(folder), token, initial, _task_file(spec.target),
                            hang_limit(spec), key=f"batch-{token}-{run_id}-{attempt}", pure=False)
        futures[fut] = run_id

    try:
        for run_id in todo:
            submit(run_id)
        bar.update(0)
        last_copy, stopping = time.monotonic(), False
        while futures:
            if stop and not stopping:
                stopping = True
                stop_event.set()
            try:
                done, _ = wait(list(futures), timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = []
            for fut in done:
                run_id = futures.pop(fut)
                rec = batch.runs[run_id]
                try:
                    res = fut.result()
                except (KilledWorker, FutureCancelledError, OSError) as exc:
                    if rec["attempts"] < MAX_ATTEMPTS and not stop:
                        log.warning("run %s lost its worker (%s); submitted again", run_id, type(exc).__name__)
                        submit(run_id)
                        continue
                    batch.end(run_id, None, f"error: lost its worker {rec['attempts']} times ({exc})", 0.0)
                    bar.update(1)
                    continue
                except (ModuleNotFoundError, RuntimeError) as exc:
                    # A worker that cannot unpickle the task (Dask wraps the import error in a
                    # RuntimeError about the task graph's deserialization): no run can go there.
                    missing = exc if isinstance(exc, ModuleNotFoundError) else exc.__cause__
                    if not isinstance(missing, ModuleNotFoundError):
                        batch.end(run_id, None, f"error: the Dask task raised {type(exc).__name__}: {exc}", 0.0)
                        bar.update(1)
                        continue
                    futures[fut] = run_id
                    raise FleetError(f"the Dask workers cannot import Melvin ({missing}); start `dask worker` "
                                     f"with this repository on PYTHONPATH") from None
                except Exception as exc:       # the task itself raised: this run fails, the batch goes on
                    batch.end(run_id, None, f"error: the Dask task raised {type(exc).__name__}: {exc}", 0.0)
                    bar.update(1)
                    continue
                if res["exit"] is None:         # stopped before it began
                    rec.update(state="pending")
                    batch.save()
                    continue
                folder = batch.run_folder(run_id)
                _write_files(folder, res["files"], clear=True)
                batch.log_file(run_id).parent.mkdir(parents=True, exist_ok=True)
                with open(batch.log_file(run_id), "a", encoding="utf-8") as fh:
                    fh.write(f"--- on {res['where']}\n{res['log']}")
                rec["where"] = res["where"]
                state = batch.end(run_id, res["exit"], res["log"], res["seconds"], stopped=res["stopped"],
                                  hung_after=hang_limit(batch.specs[run_id]) if res["hung"] else None)
                if state in ENDED:
                    Variable(f"melvin-batch-{token}-{run_id}", client=client).delete()
                bar.update(1 if state in ENDED else 0)
            if time.monotonic() - last_copy > COPY_EVERY:
                last_copy = time.monotonic()
                _copy_checkpoints(client, token, batch, set(futures.values()), copied)
        _record_workers(client, token, batch)
    except OSError as exc:          # the scheduler went away (distributed's CommClosedError is one)
        raise FleetError(f"lost the Dask scheduler at {scheduler} ({type(exc).__name__}); "
                         f"finish the batch with --resume") from None
    finally:
        for run_id in futures.values():          # never finished here: to be run again
            batch.runs[run_id].update(state="interrupted" if batch.runs[run_id]["state"] == "running" else
                                      batch.runs[run_id]["state"])
        if futures:
            batch.save()
            try:
                stop_event.set()
            except OSError:
                pass
        client.close()


def _copy_checkpoints(client, token: str, batch, running: set, copied: dict) -> None:
    """Running runs' latest checkpoints into the batch folder (a batch killed now resumes them)."""
    from distributed import Variable
    for run_id in running:
        try:
            files = Variable(f"melvin-batch-{token}-{run_id}", client=client).get(timeout=0.2)
        except (TimeoutError, OSError):
            continue
        doc = files.get("checkpoint.json") if isinstance(files, dict) else None
        if doc and copied.get(run_id) != doc:
            _write_files(batch.run_folder(run_id), files, clear=True)
            copied[run_id] = doc


def _record_workers(client, token: str, batch) -> None:
    """Each run's ``workers``: every worker its task started on (two or more: it ran again)."""
    starts: dict = {}
    for _, msg in client.get_events(EVENT_TOPIC):
        if isinstance(msg, dict) and msg.get("batch") == token and msg.get("run") in batch.runs:
            starts.setdefault(msg["run"], []).append(msg["worker"])
    for run_id, workers in starts.items():
        batch.runs[run_id]["workers"] = workers
    batch.save()
