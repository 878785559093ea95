"""Validation (not a unit test): fused sweeps vs separate runs, and bf16 (--amp) vs fp32, in test ROC-AUC.

For each data set, 10 seeds (default) are fine-tuned with the paper's dropout (0.5) in each mode:

* ``separate`` — today's loop, one seed after another (``fused=False``);
* ``fused`` — the same seeds as fused groups (:mod:`gnnpretrain.train.fused`) with the default
  kernels (CPU: ``sparse``, equal to separate runs to float rounding, dropout masks drawn another way);
* ``fused-exact`` — fused with the ``exact`` CPU kernels (bit-equal to separate runs);
* ``fused-amp`` — fused (default kernels) with bf16 (``amp=True``);

and the script prints, per data set and mode, the mean ± std (population) of the test ROC-AUC at
the best-validation epoch and at the last epoch, the wall time, the largest per-seed difference of
each fused mode from ``separate`` (``fused-exact``: 0 expected), the difference of means next to the
seed std (is the fast path's effect within noise?), and fused-amp − fused.

    python benchmarks/validate_fused.py --datasets bace --epochs 100                # the full protocol
    python benchmarks/validate_fused.py --datasets bace,bbbp --epochs 5 --emb-dim 100 --json /tmp/v.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> dict:
    import torch

    from gnnpretrain.train import FinetuneConfig, run_finetune

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="bace")
    p.add_argument("--modes", default="separate,fused,fused-amp")
    p.add_argument("--seeds", default="0-9")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--num-layer", type=int, default=5)
    p.add_argument("--emb-dim", type=int, default=300)
    p.add_argument("--gnn-type", default="gin")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--output", default=None, help="keep the runs here (default: a temporary folder, removed)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="validate_fused_"))
    results: dict = {"args": vars(args), "load_before": os.getloadavg(), "datasets": {}}
    try:
        for ds in args.datasets.split(","):
            per_mode = {}
            for mode in args.modes.split(","):
                cfg = FinetuneConfig(
                    dataset=ds, gnn_type=args.gnn_type, num_layer=args.num_layer, emb_dim=args.emb_dim,
                    dropout=args.dropout, epochs=args.epochs, seeds=args.seeds, device=args.device,
                    num_threads=args.threads, fused=mode.startswith("fused"), amp=mode.endswith("amp"),
                    fused_kernels="exact" if mode == "fused-exact" else "auto",
                    output=str(out / mode), progress=False,
                )
                t0 = time.time()
                summary = run_finetune(cfg)
                wall = time.time() - t0
                bv = [r["test_auc_best_valid"] for r in summary["per_seed"]]
                last = [r["test_auc_last"] for r in summary["per_seed"]]
                per_mode[mode] = {"best_valid": bv, "last": last, "wall_s": round(wall, 1),
                                  "mean_bv": float(np.mean(bv)), "std_bv": float(np.std(bv)),
                                  "mean_last": float(np.mean(last)), "std_last": float(np.std(last))}
                m = per_mode[mode]
                print(f"{ds:6s} {mode:10s} test ROC-AUC best-valid {100 * m['mean_bv']:.2f} ± {100 * m['std_bv']:.2f} | "
                      f"last {100 * m['mean_last']:.2f} ± {100 * m['std_last']:.2f} | {wall:.0f} s", flush=True)
            for fm in ("fused", "fused-exact"):
                if "separate" not in per_mode or fm not in per_mode:
                    continue
                s, f = per_mode["separate"], per_mode[fm]
                d = max(abs(a - b) for a, b in zip(s["best_valid"] + s["last"], f["best_valid"] + f["last"]))
                per_mode[f"max_abs_diff_separate_{fm}"] = d
                print(f"{ds:6s} separate vs {fm}: largest per-seed difference {d:.2e}; mean difference best-valid "
                      f"{100 * (f['mean_bv'] - s['mean_bv']):+.2f}, last {100 * (f['mean_last'] - s['mean_last']):+.2f} "
                      f"(seed std {100 * s['std_bv']:.2f} / {100 * s['std_last']:.2f}); "
                      f"speed-up {s['wall_s'] / max(f['wall_s'], 1e-9):.2f}x")
            if "fused" in per_mode and "fused-amp" in per_mode:
                a, b = per_mode["fused-amp"], per_mode["fused"]
                per_mode["amp_minus_fp32"] = {"best_valid": a["mean_bv"] - b["mean_bv"], "last": a["mean_last"] - b["mean_last"]}
                print(f"{ds:6s} bf16 - fp32 mean: best-valid {100 * (a['mean_bv'] - b['mean_bv']):+.2f}, last "
                      f"{100 * (a['mean_last'] - b['mean_last']):+.2f} (seed std {100 * b['std_bv']:.2f} / "
                      f"{100 * b['std_last']:.2f}); speed-up {b['wall_s'] / max(a['wall_s'], 1e-9):.2f}x")
            results["datasets"][ds] = per_mode
    finally:
        if not args.output:
            shutil.rmtree(out, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    if args.json:
        from gnnpretrain.utils import atomic_write_json

        atomic_write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
