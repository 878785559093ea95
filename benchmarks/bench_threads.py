#!/usr/bin/env python
"""CPU thread and process choices for fine-tuning, measured side by side, idle and next to a busy neighbour.

For one dataset (default BBBP, scaffold split, GIN 5x300, batch 32) it times, in fresh processes of
``scripts/finetune.py`` (so each one pays the same start-up and data loading from a warm cache):

* **single run** (1 seed x E epochs) with 1 torch thread and with one thread per core, under
  OpenMP's default (spinning) and passive waiting;
* **multi-seed** (S seeds x E epochs): sequential seeds with one thread per core, against
  ``--jobs`` parallel processes with one thread each (what ``finetune.py`` now does by default);
* the same with **one busy neighbour**: a pure-Python busy loop in another process (one core).

Before every measurement it records the 1-minute load average and the cores other processes kept busy
(``gnnpretrain.runtime.machine_busy``), so the numbers can be read against what else ran. Usage:

    python benchmarks/bench_threads.py --epochs 2 --seeds 4 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gnnpretrain.runtime import machine_busy, machine_load, usable_cores  # noqa: E402

BUSY_LOOP = "import time\nt=time.time()\nwhile time.time()-t<3600: pass\n"


def run_finetune(args, out: Path, seeds: str, threads: int | None, jobs: int | None, policy: str | None) -> float:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    env.pop("MKL_NUM_THREADS", None)
    if policy is None:
        env["OMP_WAIT_POLICY"] = ""  # empty: the runtime's own default (scripts set PASSIVE when unset)
    else:
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, str(REPO / "scripts" / "finetune.py"), "--dataset", args.dataset, "--epochs", str(args.epochs),
           "--seeds", seeds, "--output", str(out), "--no-progress"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    t0 = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t0


def measure(args, label: str, tmp: Path, **kw) -> dict:
    load, busy = machine_load(), machine_busy(0.5)
    out = tmp / f"{label.replace(' ', '_')}_{time.time_ns()}"
    secs = run_finetune(args, out, **kw)
    row = {"case": label, "seconds": round(secs, 1), "load_before": round(load, 2), "busy_before": round(busy, 2)}
    print(f"{label:55s} {secs:7.1f} s   (load {load:.2f}, other busy cores {busy:.2f})", flush=True)
    return row


def suite(args, tmp: Path, tag: str) -> list[dict]:
    cores = usable_cores()
    s_all = f"0-{args.seeds - 1}"
    rows = [
        measure(args, f"{tag}: 1 seed, 1 thread", tmp, seeds="0", threads=1, jobs=1, policy=None),
        measure(args, f"{tag}: 1 seed, {cores} threads", tmp, seeds="0", threads=cores, jobs=1, policy=None),
        measure(args, f"{tag}: 1 seed, {cores} threads, OMP passive", tmp, seeds="0", threads=cores, jobs=1,
                policy="PASSIVE"),
        measure(args, f"{tag}: 1 seed, automatic", tmp, seeds="0", threads=None, jobs=None, policy="PASSIVE"),
        measure(args, f"{tag}: {args.seeds} seeds sequential, {cores} threads", tmp, seeds=s_all, threads=cores,
                jobs=1, policy=None),
        measure(args, f"{tag}: {args.seeds} seeds, {cores} processes x 1 thread", tmp, seeds=s_all, threads=1,
                jobs=cores, policy=None),
        measure(args, f"{tag}: {args.seeds} seeds, automatic", tmp, seeds=s_all, threads=None, jobs=None,
                policy="PASSIVE"),
    ]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="bbbp")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    print(f"{usable_cores()} usable cores; dataset {args.dataset}, {args.epochs} epochs per seed")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        # warm the dataset cache so no timing includes featurization
        run_finetune(args, tmp / "warm", "0", 1, 1, None)
        rows = suite(args, tmp, "idle")
        hog = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
        try:
            time.sleep(5)
            rows += suite(args, tmp, "busy neighbour")
        finally:
            hog.kill()
            hog.wait()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
