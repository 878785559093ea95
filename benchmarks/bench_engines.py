#!/usr/bin/env python
"""Overhead of the Ray engine against the local engine: the same comparison's fine-tunes, side by side.

    python benchmarks/bench_engines.py                         # the quick profile, fused, 2 processes / 2 Ray CPUs
    python benchmarks/bench_engines.py --profile quick --datasets bace --rounds 2

Pre-training (the rows that need it) runs once, into a shared folder, before anything is timed; every
timed run then starts from a copy of it, with an empty ledger, so what is timed is the fine-tuning
stage plus each engine's own start-up: ``compare.py --fused --jobs N`` (local: N one-thread processes)
against ``compare.py --fused --engine ray --address auto`` on a Ray cluster of N CPUs that this script
starts (``ray start --head --num-cpus N``) and stops, one-thread tasks, as separate processes,
alternating. (Without ``--address`` the command starts a private instance instead, which adds Ray's own
start-up, ~5-8 s here.) Prints each wall time, the ratio Ray / local, the CPU model, its
vector flags and the load average, and checks that both ledgers hold the same results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT_COLUMNS = ["row", "dataset", "seed", "config_hash", "test_auc_best_valid", "test_auc_last", "best_epoch"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--datasets", default=None, help="comma list (default: the profile's)")
    p.add_argument("--processes", type=int, default=1, help="local --jobs and the Ray cluster's CPUs")
    p.add_argument("--rounds", type=int, default=1, help="timed pairs (local, ray), alternating")
    p.add_argument("--workdir", default=None, help="default: a temporary folder, removed afterwards")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args()

    from gnnpretrain.hardware import describe, hardware_info

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-engines-"))
    base = ["--profile", args.profile, "--fused", "--reference-checkpoints", "gcn_supervised_contextpred"]
    if args.datasets:
        base += ["--datasets", args.datasets]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    compare = [sys.executable, str(REPO / "scripts" / "compare.py")]

    # pre-training once, untimed (the fine-tunes of this run also warm the processed-data cache)
    shared = work / "pretrained"
    subprocess.run(compare + base + ["--output", str(shared), "--jobs", str(args.processes)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    figures: dict[str, list[float]] = {"local": [], "ray": []}
    ledgers = {}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray_cli, "start", "--head", "--num-cpus", str(args.processes), "--disable-usage-stats"],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _rounds(args, work, shared, compare, base, env, figures, ledgers)
    finally:
        subprocess.run([ray_cli, "stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    same = ledgers["local"].equals(ledgers["ray"])
    hw = hardware_info()
    lo, ra = min(figures["local"]), min(figures["ray"])
    print(f"\n{describe(hw)}; {os.cpu_count()} cores; {len(ledgers['local'])} fine-tunes")
    print(f"local (--jobs {args.processes}): {lo:.1f} s   ray ({args.processes} CPUs): {ra:.1f} s   "
          f"ray / local = {ra / lo:.2f} (+{ra - lo:.1f} s); same results: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "profile": args.profile, "datasets": args.datasets, "processes": args.processes,
            "fine_tunes": len(ledgers["local"]), "wall_s": figures, "ratio_best": ra / lo, "same_results": same,
            "hardware": hw, "loadavg_end": os.getloadavg(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }, indent=2))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


def _rounds(args, work: Path, shared: Path, compare: list[str], base: list[str], env: dict,
            figures: dict, ledgers: dict) -> None:
    import pandas as pd

    for r in range(args.rounds):
        for engine in ("local", "ray"):
            out = work / f"{engine}-{r}"
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(shared / "pretrain", out / "pretrain")
            extra = ["--jobs", str(args.processes)] if engine == "local" else ["--engine", "ray", "--address", "auto"]
            load0 = os.getloadavg()[0]
            t0 = time.time()
            subprocess.run(compare + base + ["--output", str(out), "--threads", "1", *extra], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            wall = time.time() - t0
            figures[engine].append(wall)
            ledgers[engine] = pd.read_csv(out / "ledger.csv")[RESULT_COLUMNS].sort_values(
                ["row", "dataset", "seed"]).reset_index(drop=True)
            print(f"round {r}: {engine:5s} {wall:7.1f} s  (load average {load0:.2f} -> {os.getloadavg()[0]:.2f})",
                  flush=True)


if __name__ == "__main__":
    main()
