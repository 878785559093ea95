#!/usr/bin/env python
"""The main job: a few minutes of real pre-training and fine-tuning that shows what pre-training does.

1. Pre-trains a GIN encoder (5 layers x 128) by attribute masking (Hu et al. 2020) on a fixed sample of
   ZINC molecules (the MOSES corpus; downloaded when missing) and reports the masked-atom accuracy per
   epoch against the accuracy of always guessing the most common atom (carbon, ~72%): a model that
   learned nothing cannot beat that.
2. Fine-tunes on a MoleculeNet dataset (BBBP, scaffold split) from scratch and from that encoder, on
   the same seeds — a smoke-size pre-training: it shows the pipeline, not what pre-training buys.
3. Fine-tunes a published, fully pre-trained encoder (``--published``, default the paper's
   ``gcn_supervised_contextpred``, resolved by hub name: offline from the reference checkpoints,
   online by download with its checksum) against scratch of the same architecture and size, on the
   same seeds and epochs. Both pairs are printed side by side with their differences and two-sided
   Welch p-values (``gnnpretrain.stats.welch_difference``).

Everything goes to ``chem/runs/quickstart/`` (``--output``); re-running resumes and skips finished
work. The CPU plan (threads, parallel seeds) is chosen once from the free cores (``--threads``,
``--jobs`` override). The defaults fit the README's promise: under 10 minutes on a 2-core CPU with
one other busy process, install included (measured: README, ``benchmarks/bench_mainjob.sh``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from gnnpretrain.runtime import add_threads_argument, exit_quietly_on_interrupt, prefer_passive_openmp  # noqa: E402

if __name__ == "__main__":
    exit_quietly_on_interrupt()
prefer_passive_openmp()  # before torch loads OpenMP

from gnnpretrain.cli_help import RawDefaultsHelpFormatter  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=RawDefaultsHelpFormatter)
    p.add_argument("--molecules", type=int, default=20_000, help="ZINC molecules to pre-train on")
    p.add_argument("--pretrain-epochs", type=int, default=2)
    p.add_argument("--dataset", default="bbbp", help="MoleculeNet dataset to fine-tune on")
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs per seed")
    p.add_argument("--seeds", default="0-2", help="fine-tuning seeds (each arm runs all of them)")
    p.add_argument("--num-layer", type=int, default=5)
    p.add_argument("--emb-dim", type=int, default=128)
    p.add_argument("--published", default="gcn_supervised_contextpred",
                   help="published encoder (gnnpretrain.hub name) fine-tuned against scratch of its architecture; "
                        "'none' skips that pair")
    p.add_argument("--output", default=str(Path("chem") / "runs" / "quickstart"), help="run folder")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="parallel fine-tuning processes, one thread each (default: the free cores)")
    add_threads_argument(p)
    p.add_argument("--data-root", default=None, help="raw data folder (default: $GNNPRETRAIN_DATA, else shared/data "
                   "beside the checkout)")
    p.add_argument("--cache", default=None, help="processed-tensor cache (default: $GNNPRETRAIN_CACHE)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def majority_atom_accuracy(store) -> tuple[float, int]:
    """Accuracy of always predicting the most common atom type of the corpus, and that type's index."""
    import torch

    counts = torch.bincount(store.x[:, 0].long())
    return float(counts.max()) / float(counts.sum()), int(counts.argmax())


def pretrain_step(args, out: Path) -> tuple[Path, list[dict], float]:
    """Attribute-masking pre-training (resumable); returns (encoder file, epoch metrics, majority baseline)."""
    from gnnpretrain.strategies import get_strategy_class
    from gnnpretrain.train.pretrain import pretrain
    from gnnpretrain.train.pretrain_data import load_pretrain_dataset, make_pretrain_loader
    from gnnpretrain.utils import seed_everything

    store = load_pretrain_dataset("zinc", "chem", data_root=args.data_root, cache=args.cache,
                                  max_molecules=args.molecules)
    baseline, _ = majority_atom_accuracy(store)
    seed_everything(0)
    cls = get_strategy_class("attrmasking", "chem")
    strategy = cls(dict(num_layer=args.num_layer, emb_dim=args.emb_dim, JK="last", drop_ratio=0.0, gnn_type="gin",
                        input="reference"))
    loader = make_pretrain_loader(store, 256, shuffle=True, seed=0)
    run = out / "pretrain"
    config = {"data": {"dataset": "zinc", "max_molecules": args.molecules, "num_graphs": len(store)},
              "batch_size": 256, "quickstart": True}
    history = pretrain(strategy, loader, epochs=args.pretrain_epochs, lr=1e-3, device="cpu", out_dir=run,
                       resume=True, config=config, seed=0, progress=not args.no_progress)
    return run / "model.pth", history, baseline


def finetune_step(args, out: Path, model: Path, seeds: list[int], jobs: int, log) -> tuple[dict[str, dict[int, float]], dict]:
    """Both arms x all seeds as fused groups (``gnnpretrain.train.fused.run_members``: the runs of one
    architecture train as one stacked model, the fastest correct path on a CPU; ``jobs`` > 1 spreads
    the groups over that many single-thread processes). Each seed's file is written when its group
    finishes, and a group saves its state every few minutes, so an interrupted run keeps what it did
    and a re-run skips or resumes it."""
    from gnnpretrain.train import FinetuneConfig, summarize
    from gnnpretrain.train.fused import run_members

    common = dict(dataset=args.dataset, num_layer=args.num_layer, emb_dim=args.emb_dim, epochs=args.epochs,
                  seeds=seeds, data_root=args.data_root, cache=args.cache, device="cpu", progress=False)
    arms = {
        "scratch": FinetuneConfig(output=str(out / "finetune" / "scratch"), **common),
        "pre-trained": FinetuneConfig(output=str(out / "finetune" / "attrmasking"), input_model_file=str(model),
                                      **common),
    }
    if args.published != "none":
        # the published encoder's architecture and size (5 x 300), and scratch of exactly that
        pub = {**common, "num_layer": None, "emb_dim": None}
        arms["published"] = FinetuneConfig(output=str(out / "finetune" / "published"),
                                           input_model_file=args.published, **pub)
        ref = arms["published"]
        arms["published scratch"] = FinetuneConfig(output=str(out / "finetune" / "published-scratch"), **{
            **pub, "gnn_type": ref.gnn_type, "num_layer": ref.num_layer, "emb_dim": ref.emb_dim})
    todo = [(arm, cfg, s) for s in seeds for arm, cfg in arms.items()]  # all arms advance together
    results: dict[str, dict[int, float]] = {arm: {} for arm in arms}
    done = 0

    def record(r: dict) -> None:
        nonlocal done
        done += 1
        results[r["arm"]][r["seed"]] = r["test"]
        what = "already done" if r["skipped"] else f"{r['wall_time_s']:.0f} s"
        log(f"  [{done}/{len(todo)}] {r['arm']:17s} seed {r['seed']}: test ROC-AUC {100 * r['test']:.2f} ({what})")

    from gnnpretrain.runtime import interrupt_note

    def on_record(i: int, rec: dict) -> None:
        arm, _, seed = todo[i]
        record({"arm": arm, "seed": seed, "test": rec["best_valid"]["test_auc"], "skipped": rec["skipped"],
                "wall_time_s": rec["wall_time_s"]})

    with interrupt_note(lambda: f"{done} of {len(todo)} fine-tuning runs are saved under {out / 'finetune'}; "
                                "the same command continues with the others"):
        records = run_members([(cfg, seed) for _, cfg, seed in todo], jobs=jobs, on_record=on_record, note=log,
                              progress=None if args.no_progress else log)
        for i, rec in enumerate(records):  # runs finished before (run_members reports only what it ran)
            if rec["skipped"]:
                on_record(i, rec)
    for cfg in arms.values():
        summarize(cfg)  # summary.json per arm, as finetune.py writes it
    return results, arms


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    for name in ("molecules", "pretrain_epochs", "epochs", "num_layer", "emb_dim"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    from gnnpretrain.runtime import apply_threads, current_busy, plan_jobs, usable_cores
    from gnnpretrain.stats import mean_std, welch_difference
    from gnnpretrain.utils import atomic_write_json, parse_seeds

    seeds = parse_seeds(args.seeds)
    t0 = time.time()
    out = Path(args.output)
    print(f"quickstart: pre-train a GIN {args.num_layer}x{args.emb_dim} by attribute masking on "
          f"{args.molecules:,} ZINC molecules ({args.pretrain_epochs} epochs), then fine-tune on {args.dataset} "
          f"(scaffold split, {args.epochs} epochs) from scratch and from the pre-trained encoder, seeds "
          f"{args.seeds}; results in {out}", flush=True)
    apply_threads(args.threads)
    model, history, baseline = pretrain_step(args, out)
    t_pre = time.time() - t0
    accs = [h["acc"] for h in history]
    err0, err1 = 1 - baseline, 1 - accs[-1]
    pre_line = (f"pre-training: masked-atom accuracy {' -> '.join(f'{a:.3f}' for a in accs)} (epochs 1-{len(accs)}); "
                f"always guessing carbon scores {baseline:.3f}, so the encoder "
                + (f"removed {100 * (err0 - err1) / err0:.0f}% of that guess's errors" if err1 < err0 else
                   "did NOT beat that guess (more epochs or molecules needed)"))
    print(pre_line, flush=True)

    if args.jobs is not None:
        jobs = plan_jobs(usable_cores(), 0.0, 4 * len(seeds), requested=args.jobs)
    elif args.threads is not None:
        jobs = 1
    else:
        jobs = plan_jobs(usable_cores(), current_busy(), 4 * len(seeds))
    n_arms = 2 if args.published == "none" else 4
    print(f"fine-tuning: {n_arms * len(seeds)} runs ({len(seeds)} seeds x {n_arms} arms) in {jobs} process(es)",
          flush=True)
    results, arms = finetune_step(args, out, model, seeds, jobs, print)

    pairs = [("pre-trained", "scratch", f"attribute masking, {args.molecules:,} molecules x {args.pretrain_epochs} "
              f"epochs (smoke-size)")]
    if "published" in results:
        pairs.append(("published", "published scratch", f"published {args.published} (full pre-training)"))
    lines = [f"{args.dataset} test ROC-AUC at the best-validation epoch, same seeds, {args.epochs} fine-tuning epochs:"]
    head = f"  {'seed':>6s}  {'scratch':>9s}  {'pre-trained':>11s}"
    if len(pairs) > 1:
        arch = f"{arms['published'].gnn_type} {arms['published'].num_layer}x{arms['published'].emb_dim}"
        head += f"  | {arch + ' scratch':>17s}  {args.published:>26s}"
    lines.append(head)
    for s in seeds:
        row = f"  {s:>6d}  {100 * results['scratch'][s]:9.2f}  {100 * results['pre-trained'][s]:11.2f}"
        if len(pairs) > 1:
            row += f"  | {100 * results['published scratch'][s]:17.2f}  {100 * results['published'][s]:26.2f}"
        lines.append(row)
    diffs = {}
    for arm, base, what in pairs:
        a = [results[arm][s] for s in seeds]
        b = [results[base][s] for s in seeds]
        d = welch_difference(a, b)
        (ma, sa, _), (mb, sb, _) = mean_std(a), mean_std(b)
        verdict = ("a difference this size could be seed noise" if not d.p_value < 0.05 else
                   "pre-training helped" if d.diff > 0 else "pre-training hurt (negative transfer)")
        lines.append(f"{what}: {100 * ma:.2f}±{100 * sa:.1f} vs scratch {100 * mb:.2f}±{100 * sb:.1f}; "
                     f"{arm} - scratch: {100 * d.diff:+.2f} ROC-AUC points, Welch p = {d.p_value:.3f} "
                     f"(two-sided, {d.n_a} + {d.n_b} seeds): {verdict}")
        diffs[arm] = d
    d = diffs["pre-trained"]
    scratch = [results["scratch"][s] for s in seeds]
    pre = [results["pre-trained"][s] for s in seeds]
    total = time.time() - t0
    lines.append(f"done in {_clock(total)} (pre-training {_clock(t_pre)}, fine-tuning {_clock(total - t_pre)})")
    print("\n".join(lines), flush=True)
    report = {"pretrain_accuracy": accs, "majority_baseline": baseline, "scratch": scratch, "pretrained": pre,
              "seeds": seeds, "difference": d.diff, "welch_p": d.p_value, "wall_time_s": round(total, 1),
              "pretrain_time_s": round(t_pre, 1), "dataset": args.dataset, "jobs": jobs}
    if "published" in diffs:
        report["published"] = {
            "name": args.published, "gnn_type": arms["published"].gnn_type, "num_layer": arms["published"].num_layer,
            "emb_dim": arms["published"].emb_dim, "scratch": [results["published scratch"][s] for s in seeds],
            "pretrained": [results["published"][s] for s in seeds], "difference": diffs["published"].diff,
            "welch_p": diffs["published"].p_value}
    atomic_write_json(out / "report.json", report)
    return report


if __name__ == "__main__":
    from gnnpretrain.utils import run_cli

    run_cli(main)
