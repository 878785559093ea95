"""Two versions of the fused kernels (``gnnpretrain/nn/stacked.py``), step by step in one process.

Why: on a shared machine the load moves by 10-30% within a minute, so two benchmark runs minutes
apart (or two processes) cannot resolve a 10% change in the kernels. Here both versions train the
same G models (same initial weights, same batches) in one process, alternating step by step (the
order flipped every step), and the figure is the per-step ratio of CPU time per node — drifts in
the machine's load hit both sides of every ratio alike. ``--old`` is another checkout (its
``gnnpretrain/nn/stacked.py`` is loaded by path; everything else comes from this checkout).

Example::

    python benchmarks/bench_stacked_ab.py --old ../gnnpretrain-main --precision fp32 --steps 15
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--old", required=True, help="the other checkout (its gnnpretrain/nn/stacked.py is compared)")
    p.add_argument("--dataset", default="bbbp")
    p.add_argument("--gnn-type", default="gin", choices=("gin", "gcn", "graphsage", "gat"))
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    p.add_argument("--steps", type=int, default=15, help="steps per version, warm-up included")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed first steps (bf16: more than an epoch's steps, so both versions have compiled "
                        "their oneDNN shapes)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if not 0 <= args.warmup < args.steps:
        p.error(f"--warmup must be below --steps ({args.steps}), got {args.warmup}")

    import torch

    torch.set_num_threads(args.threads)
    from bench_floor import _api, _group_batches

    from gnnpretrain import hardware
    from gnnpretrain.utils import atomic_write_json, seed_everything

    api = _api()
    amp = args.precision == "bf16"
    if amp and not hardware.resolve_amp(True, "cpu").enabled:
        raise SystemExit(f"bf16 is not native on this CPU ({hardware.describe()})")
    mods = {"old": _load(Path(args.old) / "gnnpretrain" / "nn" / "stacked.py", "stacked_old"),
            "new": _load(ROOT / "gnnpretrain" / "nn" / "stacked.py", "stacked_new")}
    cfg = api.FinetuneConfig(dataset=args.dataset, gnn_type=args.gnn_type, dropout=0.5, batch_size=32, progress=False,
                             amp=amp)
    task = api.load_task(cfg)
    store = api.TrainStore(task.graphs("train"))
    G = args.groups
    runs = {}
    for key, mod in mods.items():
        plain = []
        for g in range(G):
            seed_everything(g)
            plain.append(api.build_model(task, cfg))
        st = mod.StackedGraphPred(plain, amp=amp, kernels="sparse")
        st.train()
        st.dropout_generators = [torch.Generator().manual_seed(g) for g in range(G)]
        runs[key] = (st, api.make_optimizer(st, cfg, "sparse"))
    from gnnpretrain.train.fused import per_model_loss as loss_fn
    it = _group_batches(api, store, G, cfg.batch_size)
    per: dict[str, list[float]] = {k: [] for k in runs}
    for i in range(args.steps):
        idx = next(it)
        for key in (list(runs) if i % 2 == 0 else list(runs)[::-1]):
            st, opt = runs[key]
            c = time.process_time()
            fb = store.collate(idx)
            losses = loss_fn(st(fb), fb.y)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            if i >= args.warmup:
                per[key].append((time.process_time() - c) / int(fb.counts.sum()) * 1e6)
    ratios = [o / n for o, n in zip(per["old"], per["new"])]
    out = {"hardware": hardware.describe(), "gnn_type": args.gnn_type, "dataset": args.dataset,
           "precision": args.precision, "groups": G, "steps": args.steps, "warmup": args.warmup,
           "load_average": list(os.getloadavg()),
           "us_per_node": {k: {"median": statistics.median(v), "min": min(v)} for k, v in per.items()},
           "old_over_new": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}}
    print(f"hardware: {out['hardware']}")
    for k, v in out["us_per_node"].items():
        print(f"{args.gnn_type} {args.precision} {k}: {v['median']:.1f} CPU-us per node per step (median; min {v['min']:.1f})")
    r = out["old_over_new"]
    print(f"old / new per step: median {r['median']:.3f} (min {r['min']:.3f}, max {r['max']:.3f})")
    if args.json:
        atomic_write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
