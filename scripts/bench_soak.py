#!/usr/bin/env python3
"""Soak benchmark (issue 13): a long ``--keep-going`` run's memory and run-folder size.

``run_soak_benchmarks(quick)`` returns rows for ``scripts/bench.py``: one ``python -m evolve
run --keep-going`` of 30 minutes (quick: 3), sampled every few seconds from outside the process
(``/proc/<pid>/status`` VmRSS, the folder's bytes on disk). Targets: resident memory grows less
than 10 % after the first minute; the folder stays under 50 MB.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def run_soak_benchmarks(quick: bool) -> list[dict]:
    seconds = 180 if quick else 1800
    warm = 30 if quick else 60
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "soak"
        cmd = [sys.executable, "-m", "evolve", "run", "--quiet", "--keep-going", "--task", "popcount8",
               "--pop", "300", "--generations", "100000000", "--time-limit", str(seconds), "--out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples = []                                 # (seconds, rss, folder bytes)
        while proc.poll() is None:
            time.sleep(2.0)
            rss = _rss_bytes(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter() - t0, rss, _folder_bytes(out)))
        wall = time.perf_counter() - t0
        err = proc.stderr.read().decode(errors="replace").strip().splitlines()
        if proc.returncode != 0:
            raise RuntimeError(f"soak run failed ({proc.returncode}): {err[-1] if err else ''}")
        final_folder = _folder_bytes(out)
        gens = sum(1 for _ in (out / "metrics.jsonl").open()) if (out / "metrics.jsonl").exists() else 0
    after = [s for s in samples if s[0] >= warm]
    base = after[0][1] if after else samples[0][1]
    peak = max(s[1] for s in after) if after else base
    growth = (peak - base) / base
    biggest = max([s[2] for s in samples] + [final_folder])
    note = (f"python -m evolve run --keep-going --task popcount8 --pop 300 --time-limit {seconds} (no generation "
            f"limit): "
            f"{gens} metrics lines, {wall:.0f} s wall")
    return [
        {"name": "soak: resident memory after the first minute", "value": base / 2**20, "unit": "MiB",
         "baseline": None, "ratio": None, "notes": note},
        {"name": "soak: resident memory growth after the first minute", "value": 100 * growth, "unit": "%",
         "baseline": None, "ratio": None, "notes": f"peak {peak / 2**20:.1f} MiB; target < 10 %"},
        {"name": "soak: largest run folder", "value": biggest / 2**20, "unit": "MiB", "baseline": None,
         "ratio": None, "notes": f"final {final_folder / 2**20:.2f} MiB; target < 50 MB"},
    ]


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0],
                                 epilog="scripts/bench.py runs every section; its --json writes the rows.")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, a few minutes")
    quick = ap.parse_args().quick
    for row in run_soak_benchmarks(quick):
        print(row)
