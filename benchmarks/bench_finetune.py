"""Fine-tuning throughput: separate runs (today's loop) vs fused sweeps of G models (a benchmark, not a test).

For one data set (default BBBP, scaffold split's training graphs), GIN 5 x 300, batch 32, the paper's
dropout 0.5, Adam, it times training steps (forward + backward + Adam; batch collation included) of

* ``separate``: one model, exactly the loop of ``separate.train_epoch`` (PyG ``DataLoader``
  collation, ``GNNGraphPred``, ``torch.optim.Adam``); separate runs are sequential, so G of them take
  G times as long and their graphs/s is this number;
* ``fused G``: G models as one :class:`~gnnpretrain.nn.stacked.StackedGraphPred` step with
  :class:`~gnnpretrain.train.fused.TrainStore` collation and one Adam over the stacked tensors — the
  loop of :func:`gnnpretrain.train.fused.train_group` (CPU: the bit-exact per-model kernels; GPU: the
  batched kernels);

in fp32 and bf16 (``--amp`` semantics), reporting graphs/s (training graphs per second summed over
models; also per CPU-second of the process, which other jobs on a shared machine disturb less), the
ratio to ``separate`` in the same precision and to ``separate`` fp32, and peak memory.
``benchmarks/bench_floor.py`` reuses its loops and sets them against the matrix-multiply floor.
Each configuration runs in its own subprocess, so peak RSS (CPU) is its own; a measurement is a
fixed number of timed steps after warm-up steps (not whole epochs), so a CPU run takes minutes.

Examples::

    python benchmarks/bench_finetune.py --device cpu --json /tmp/bench_ft_cpu.json
    python benchmarks/bench_finetune.py --device cuda --groups 10,40,80,160 --json /tmp/bench_ft_gpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _measure(spec: dict) -> dict:
    """Run one configuration in this process and return its figures."""
    import torch

    torch.set_num_threads(spec["threads"])
    from gnnpretrain.metrics import masked_bce_with_logits
    from gnnpretrain.nn.stacked import StackedGraphPred
    from gnnpretrain.train.run import FinetuneConfig, autocast, build_model, load_task, train_loader
    from gnnpretrain.train.fused import TrainStore, index_loader, make_optimizer, per_model_loss
    from gnnpretrain.utils import resolve_device, seed_everything

    device = resolve_device(spec["device"])
    cfg = FinetuneConfig(dataset=spec["dataset"], gnn_type=spec["gnn_type"], num_layer=spec["num_layer"],
                         emb_dim=spec["emb_dim"], dropout=spec["dropout"], batch_size=spec["batch_size"],
                         amp=spec["amp"], progress=False)
    task = load_task(cfg)
    G, steps = spec["G"], spec["steps"]
    # warm-up counted in model-steps: oneDNN compiles a bf16 product per new shape, and a real run
    # amortises that over its epochs, so the timed steps should see the steady state
    warmup = max(spec["warmup"], math.ceil(spec.get("warmup_model_steps", 0) / max(G, 1)))
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    if G == 0:  # separate: today's loop
        seed_everything(0)
        model = build_model(task, cfg).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        model.train()

        def batches():
            while True:
                yield from train_loader(task, cfg.batch_size, 0, 0)

        it = batches()

        def step():
            batch = next(it).to(device)
            with autocast(device, cfg.amp):
                logits = model(batch)
            logits = logits.float()
            loss = masked_bce_with_logits(logits, batch.y.reshape(logits.shape).float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return batch.num_graphs
    else:
        plain = []
        for g in range(G):
            seed_everything(g)
            plain.append(build_model(task, cfg))
        kernels = spec.get("kernels") or ("exact" if device.type == "cpu" else "batched")
        stacked = StackedGraphPred(plain, amp=cfg.amp, kernels=kernels).to(device)
        del plain
        if device.type == "cpu" and cfg.dropout > 0:
            gens = []
            for g in range(G):
                gen = torch.Generator()
                gen.manual_seed(g)
                gens.append(gen)
            stacked.dropout_generators = gens
        opt = make_optimizer(stacked, cfg, kernels)
        store = TrainStore(task.graphs("train"))
        gens = [torch.Generator().manual_seed(g) for g in range(G)]
        stacked.train()

        def index_batches():
            while True:
                loaders = [iter(index_loader(len(store), cfg.batch_size, gen)) for gen in gens]
                for _ in range(len(loaders[0])):
                    yield torch.stack([next(ld) for ld in loaders])

        it = index_batches()

        def step():
            fb = store.collate(next(it), padded=stacked.kernels == "batched").to(device)
            losses = per_model_loss(stacked(fb), fb.y)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            return fb.num_graphs * G

    for _ in range(warmup):
        step()
    rates, cpu_rates = [], []
    for _ in range(spec.get("repeat", 1)):  # on a shared machine the best repetition is the least disturbed
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        graphs = 0
        for _ in range(steps):
            graphs += step()
        sync()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        rates.append(graphs / elapsed)
        # graphs per CPU-second of this process: per core, and less disturbed than wall time by other
        # processes taking turns on the same cores (on CPU only; a GPU run's CPU time is not its work)
        cpu_rates.append(graphs / max(cpu, 1e-9))
    out = {**spec, "graphs": graphs, "seconds": elapsed, "graphs_per_s": max(rates), "all_graphs_per_s": rates,
           "cpu_seconds": cpu, "graphs_per_cpu_s": max(cpu_rates), "all_graphs_per_cpu_s": cpu_rates,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if cuda:
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _print_one(r: dict) -> None:
    name = "separate" if r["G"] == 0 else f"fused G={r['G']} ({r['kernels']})"
    mem = f"peak RSS {r['peak_rss_mib']:.0f} MiB" + (f", CUDA {r['peak_cuda_mib']:.0f} MiB" if "peak_cuda_mib" in r else "")
    runs = ", ".join(f"{v:.0f}" for v in r["all_graphs_per_s"])
    print(f"{r['precision']:5s} {name:26s} {r['graphs_per_s']:9.1f} graphs/s (best of {runs}; {r['graphs']} graphs "
          f"per repetition; {r['graphs_per_cpu_s']:.1f} per CPU-second; {mem})", flush=True)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="bbbp")
    p.add_argument("--gnn-type", default="gin")
    p.add_argument("--num-layer", type=int, default=5)
    p.add_argument("--emb-dim", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--groups", default="10,40,80", help="fused group sizes G")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--graphs", type=int, default=1280, help="timed training graphs per model-configuration (rounded up to whole steps)")
    p.add_argument("--min-steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per configuration (at least)")
    p.add_argument("--warmup-model-steps", type=int, default=24,
                   help="untimed model-steps (steps x G) per configuration, so bf16 shape compilation is amortised")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the whole list of configurations this many times, interleaved (on a shared machine "
                        "the best round of each is the least disturbed)")
    p.add_argument("--repeat", type=int, default=1, help="timed repetitions per configuration; the best is reported")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kernels", default=None,
                   help="fused kernel sets to time, comma-separated (exact, sparse, batched; default: exact,sparse on "
                        "CPU, batched on CUDA)")
    p.add_argument("--json", default=None, help="write all figures here")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one spec (JSON) and print
    args = p.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(_measure(json.loads(args.one))))
        return {}

    import torch

    base = dict(dataset=args.dataset, gnn_type=args.gnn_type, num_layer=args.num_layer, emb_dim=args.emb_dim,
                batch_size=args.batch_size, dropout=args.dropout, device=args.device, threads=args.threads,
                warmup=args.warmup, warmup_model_steps=args.warmup_model_steps, repeat=args.repeat)
    specs = []
    kernel_sets = (args.kernels or ("batched" if args.device.startswith("cuda") else "exact,sparse")).split(",")
    groups = [int(g) for g in args.groups.split(",") if g]
    for prec in args.precisions.split(","):
        amp = prec == "bf16"
        for G in [0] + groups:
            per_step = max(G, 1) * args.batch_size
            steps = max(args.min_steps, math.ceil(args.graphs / per_step))
            if G == 0:
                specs.append({**base, "G": G, "amp": amp, "precision": prec, "steps": steps})
            for kern in (kernel_sets if G else []):
                specs.append({**base, "G": G, "amp": amp, "precision": prec, "steps": steps, "kernels": kern})
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    results = [None] * len(specs)
    t_start = time.time()
    load_before = os.getloadavg()
    for rnd in range(args.rounds):
        for k, spec in enumerate(specs):
            proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True, env=env)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not line:
                print(f"FAILED {spec}: {proc.stderr[-2000:]}", file=sys.stderr)
                results[k] = results[k] or {**spec, "error": proc.stderr[-500:]}
                continue
            r = json.loads(line[0][len("RESULT "):])
            prev = results[k]
            if prev is not None and "graphs_per_s" in prev:
                r["all_graphs_per_s"] = prev["all_graphs_per_s"] + r["all_graphs_per_s"]
                r["graphs_per_s"] = max(r["all_graphs_per_s"])
                r["all_graphs_per_cpu_s"] = prev["all_graphs_per_cpu_s"] + r["all_graphs_per_cpu_s"]
                r["graphs_per_cpu_s"] = max(r["all_graphs_per_cpu_s"])
                r["peak_rss_mib"] = max(r["peak_rss_mib"], prev["peak_rss_mib"])
            results[k] = r
            if rnd < args.rounds - 1:
                continue
            _print_one(r)
    results = [r for r in results if r is not None]
    sep = {r["precision"]: r["graphs_per_s"] for r in results if r.get("G") == 0 and "graphs_per_s" in r}
    print("\nratios (graphs/s over separate in the same precision | over separate fp32):")
    for r in results:
        if r.get("G") and "graphs_per_s" in r:
            same = r["graphs_per_s"] / sep[r["precision"]] if r["precision"] in sep else float("nan")
            fp32 = r["graphs_per_s"] / sep["fp32"] if "fp32" in sep else float("nan")
            r["ratio_same_precision"], r["ratio_vs_separate_fp32"] = same, fp32
            print(f"  {r['precision']:5s} fused G={r['G']:<4d} ({r['kernels']:7s}) {same:5.2f}x | {fp32:5.2f}x")
    if "bf16" in sep and "fp32" in sep:
        print(f"  bf16 separate {sep['bf16'] / sep['fp32']:5.2f}x | {sep['bf16'] / sep['fp32']:5.2f}x")
    info = {
        "command": " ".join([Path(sys.executable).name, "benchmarks/bench_finetune.py", *(argv or sys.argv[1:])]),
        "hardware": {"machine": platform.machine(), "processor": platform.processor(), "cpus": os.cpu_count(),
                     "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "torch": torch.__version__, "threads": args.threads,
        "load_before": load_before, "load_after": None, "wall_s": None, "results": results,
    }
    info["load_after"] = os.getloadavg()
    info["wall_s"] = round(time.time() - t_start, 1)
    print(f"\nwall {info['wall_s']} s; load average before {info['load_before']}, after {info['load_after']}")
    if args.json:
        from gnnpretrain.utils import atomic_write_json

        atomic_write_json(args.json, info)
    return info


if __name__ == "__main__":
    main()
