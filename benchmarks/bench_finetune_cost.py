#!/usr/bin/env python
"""Cost of one fine-tuning epoch at the paper's protocol, per architecture and data set.

Why: the architectures profile of ``scripts/compare.py`` is 8 model rows x 8 data sets x 10 seeds x
100 epochs; before launching any of it, this measures what one epoch costs (train pass + the valid
and test evaluations that both epoch rules need), so the per-row and whole-profile time can be
projected instead of guessed.

Each (gnn, dataset) pair fine-tunes ``--epochs`` epochs of seed 0 with the library's own
:func:`gnnpretrain.train.separate.finetune_seed` (5 layers x 300, batch 32, scaffold split, the
paper's defaults), from scratch (loading a checkpoint costs nothing per epoch). The first epoch is
reported apart (warm-up: first allocations); the steady per-epoch time is the median of the others.
On a shared machine wall time depends on the load, so the process CPU time per epoch (all epochs,
one thread) is reported too: it is what an epoch costs on one dedicated core.

    python benchmarks/bench_finetune_cost.py --gnn gcn,graphsage,gat,gin --datasets bace,bbbp --epochs 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gnn", default="gcn,graphsage,gat,gin")
    p.add_argument("--datasets", default="bace,bbbp")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="also write the measurements here")
    args = p.parse_args(argv)

    import torch

    from gnnpretrain.train import FinetuneConfig, finetune_seed, load_task
    from gnnpretrain.utils import runtime_info

    torch.set_num_threads(args.threads)
    out: dict = {"runtime": runtime_info(args.device), "epochs": args.epochs, "cells": []}
    print(f"runtime: {out['runtime']}")
    for ds in [d for d in args.datasets.split(",") if d]:
        cfg0 = FinetuneConfig(dataset=ds, device=args.device, progress=False, epochs=args.epochs)
        t0 = time.time()
        task = load_task(cfg0)
        print(f"{ds}: task loaded in {time.time() - t0:.1f} s, sizes {task.sizes}")
        for gnn in [g for g in args.gnn.split(",") if g]:
            cfg = FinetuneConfig(dataset=ds, gnn_type=gnn, device=args.device, progress=False,
                                 epochs=args.epochs, num_threads=args.threads)
            cpu0 = time.process_time()
            rec = finetune_seed(task, 0, cfg, args.device)
            cpu = (time.process_time() - cpu0) / args.epochs
            times = [c["time_s"] for c in rec["curve"]]
            per = [b - a for a, b in zip([0.0] + times[:-1], times)]
            steady = statistics.median(per[1:]) if len(per) > 1 else per[0]
            cell = {"dataset": ds, "gnn": gnn, "first_epoch_s": round(per[0], 2), "epoch_s": round(steady, 2),
                    "cpu_s_per_epoch": round(cpu, 2), "seed_100_epochs_cpu_min": round(100 * cpu / 60, 1),
                    "row_dataset_10_seeds_cpu_h": round(1000 * cpu / 3600, 2), **task.sizes}
            out["cells"].append(cell)
            print(f"  {gnn:9s} wall: first epoch {per[0]:6.2f} s, steady {steady:6.2f} s/epoch | process CPU "
                  f"{cpu:6.2f} s/epoch -> 1 seed x 100 epochs {100 * cpu / 60:5.1f} CPU-min, 10 seeds "
                  f"{1000 * cpu / 3600:5.2f} CPU-h")
            sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
