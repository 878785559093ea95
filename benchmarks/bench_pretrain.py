"""Throughput of the context-prediction data pipeline and training step (a benchmark, not a test).

Measures, on N real molecules of the MOSES ZINC corpus:

(a) batch assembly + context extraction alone (``GraphStoreLoader`` → ``extract_context``), graphs/s;
(a0) the baseline: a faithful re-implementation of the reference's per-graph pipeline (``Data`` per
     molecule → networkx ``ExtractSubstructureContextPair`` → ``BatchSubstructContext`` collate), graphs/s,
     and the speed-up of (a) over it;
(b) a full contextpred training step (extraction + both GNNs forward + backward + Adam), graphs/s, next
    to the two bare GNN passes on pre-extracted pairs (same forward + backward + Adam, no extraction) and
    the ratio full / bare;

(c) with ``--strategies graphcl,graphmae,contextpred``: full training steps (the strategy's own batched
    transform — augmented views, masks or context pairs — + forward + backward + Adam) of several
    strategies side by side on the same batches, interleaved (round-robin repeats, the median per strategy)
    so that a change in the machine's load hits all of them alike; graphs/s, which on one thread is graphs/s
    per core, with the transform alone timed too. The CPU (``lscpu`` model name; avx2 / avx512f / avx512_bf16 /
    amx flags) and the 1-minute load average before and after are recorded.

on one CPU thread and, with ``--device cuda``, on the GPU (``--amp`` for bf16 autocast), with peak memory
(process max RSS; ``torch.cuda.max_memory_allocated`` on GPU).

Example::

    python benchmarks/bench_pretrain.py --num-molecules 20000 --device cpu
    python benchmarks/bench_pretrain.py --num-molecules 20000 --device cuda --amp
    python benchmarks/bench_pretrain.py --num-molecules 5000 --skip-pipeline --skip-train \
        --strategies graphcl,graphmae,contextpred --json /tmp/bench_strategies.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gnnpretrain.chem.corpus import load_corpus  # noqa: E402
from gnnpretrain.data import GraphStoreLoader, extract_context  # noqa: E402
from gnnpretrain.utils import atomic_write_json, resolve_device  # noqa: E402


# ----------------------------------------------------------------------------------------------------
# Baseline: the reference's per-graph pipeline (networkx), re-implemented faithfully for timing only.
# ----------------------------------------------------------------------------------------------------
def _ref_data_to_nx(data):
    import networkx as nx

    g = nx.Graph()
    x = data.x.cpu().numpy()
    for i in range(x.shape[0]):
        g.add_node(i, atom_num_idx=x[i, 0], chirality_tag_idx=x[i, 1])
    ei = data.edge_index.cpu().numpy()
    ea = data.edge_attr.cpu().numpy()
    for j in range(0, ei.shape[1], 2):
        b, e = int(ei[0, j]), int(ei[1, j])
        if not g.has_edge(b, e):
            g.add_edge(b, e, bond_type_idx=ea[j, 0], bond_dir_idx=ea[j, 1])
    return g


def _ref_nx_to_arrays(g):
    x = torch.tensor(np.array([[d["atom_num_idx"], d["chirality_tag_idx"]] for _, d in g.nodes(data=True)]), dtype=torch.long)
    if g.number_of_edges() > 0:
        edges, feats = [], []
        for i, j, d in g.edges(data=True):
            f = [d["bond_type_idx"], d["bond_dir_idx"]]
            edges += [(i, j), (j, i)]
            feats += [f, f]
        ei = torch.tensor(np.array(edges).T, dtype=torch.long)
        ea = torch.tensor(np.array(feats), dtype=torch.long)
    else:
        ei = torch.empty((2, 0), dtype=torch.long)
        ea = torch.empty((0, 2), dtype=torch.long)
    return x, ei, ea


def _ref_reset_idxes(g):
    import networkx as nx

    mapping = {old: new for new, old in enumerate(g.nodes())}
    return nx.relabel_nodes(g, mapping, copy=True), mapping


def reference_transform(data, k: int, l1: int, l2: int, rng: np.random.Generator, root: int | None = None):
    """The reference's ``ExtractSubstructureContextPair.__call__`` (networkx shortest paths)."""
    import networkx as nx

    n = data.x.size(0)
    if root is None:
        root = int(rng.integers(n))
    g = _ref_data_to_nx(data)
    sub_nodes = nx.single_source_shortest_path_length(g, root, k).keys()
    if len(sub_nodes) > 0:
        sg, smap = _ref_reset_idxes(g.subgraph(sub_nodes))
        data.x_substruct, data.edge_index_substruct, data.edge_attr_substruct = _ref_nx_to_arrays(sg)
        data.center_substruct_idx = torch.tensor([smap[root]])
    l1_nodes = nx.single_source_shortest_path_length(g, root, l1).keys()
    l2_nodes = nx.single_source_shortest_path_length(g, root, l2).keys()
    ctx_nodes = set(l1_nodes).symmetric_difference(set(l2_nodes))
    if len(ctx_nodes) > 0:
        cg, cmap = _ref_reset_idxes(g.subgraph(ctx_nodes))
        data.x_context, data.edge_index_context, data.edge_attr_context = _ref_nx_to_arrays(cg)
    overlap = list(ctx_nodes.intersection(set(sub_nodes)))
    if len(overlap) > 0:
        data.overlap_context_substruct_idx = torch.tensor([cmap[i] for i in overlap])
    return data


def reference_collate(data_list):
    """The reference's ``BatchSubstructContext.from_data_list`` (skips graphs without context)."""
    keys_s = ["center_substruct_idx", "edge_attr_substruct", "edge_index_substruct", "x_substruct"]
    keys_c = ["overlap_context_substruct_idx", "edge_attr_context", "edge_index_context", "x_context"]
    inc = {"edge_index_substruct", "edge_index_context", "overlap_context_substruct_idx", "center_substruct_idx"}
    out = {k: [] for k in keys_s + keys_c}
    batch_overlap, sizes = [], []
    cs = cc = i = 0
    for d in data_list:
        if not hasattr(d, "x_context"):
            continue
        batch_overlap.append(torch.full((len(d.overlap_context_substruct_idx),), i, dtype=torch.long))
        sizes.append(len(d.overlap_context_substruct_idx))
        for k in keys_s:
            out[k].append(d[k] + cs if k in inc else d[k])
        for k in keys_c:
            out[k].append(d[k] + cc if k in inc else d[k])
        cs += len(d.x_substruct)
        cc += len(d.x_context)
        i += 1
    res = {k: torch.cat(v, dim=-1 if "edge_index" in k else 0) for k, v in out.items() if v}
    res["batch_overlapped_context"] = torch.cat(batch_overlap) if batch_overlap else torch.empty(0, dtype=torch.long)
    res["overlapped_context_size"] = torch.tensor(sizes)
    return res


def check_baseline_agrees(store, k, l1, l2, n: int = 300) -> None:
    """Sanity check: for the same roots, the baseline and ``extract_context`` select the same node sets."""
    idx = torch.arange(min(n, len(store)))
    batch = store.collate(idx)
    pair = extract_context(batch, k, l1, l2, generator=torch.Generator().manual_seed(0))
    kept = pair.kept.tolist()
    rng = np.random.default_rng(0)
    for i in idx.tolist():
        d = reference_transform(store[i], k, l1, l2, rng, root=int(pair.roots[i]))
        has = hasattr(d, "x_context")
        assert has == (i in kept), f"graph {i}: baseline and batched disagree on whether it has a context"
        if has:
            j = kept.index(i)
            assert int((pair.sub_batch == j).sum()) == d.x_substruct.size(0)
            assert int((pair.ctx_batch == j).sum()) == d.x_context.size(0)
            assert int((pair.anchor_batch == j).sum()) == d.overlap_context_substruct_idx.numel()
            s_edges = int((pair.sub_batch[pair.sub_edge_index[0]] == j).sum())
            assert s_edges == d.edge_index_substruct.size(1)


# ----------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def bench_pipeline(store, batch_size, device, k, l1, l2, seed) -> dict:
    from gnnpretrain.data import mask_atoms, sample_negative_edges

    loader = GraphStoreLoader(store, batch_size, shuffle=True, seed=seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    # warm-up (first touches of the memory map, CUDA kernels)
    for i, b in enumerate(loader):
        extract_context(b.to(device), k, l1, l2, generator=gen)
        if i == 2:
            break
    _sync(device)
    n = dropped = 0
    t0 = time.perf_counter()
    for b in loader:
        pair = extract_context(b.to(device, non_blocking=True), k, l1, l2, generator=gen)
        n += b.num_graphs
        dropped += pair.num_dropped
    _sync(device)
    dt = time.perf_counter() - t0
    out = {"graphs": n, "seconds": dt, "graphs_per_s": n / dt, "dropped_frac": dropped / n}

    # break-down: each stage alone (batches already assembled / already on the device)
    t0 = time.perf_counter()
    batches = [b for b in loader]
    out["collate_only_graphs_per_s"] = n / (time.perf_counter() - t0)
    batches = [b.to(device) for b in batches]
    for name, fn in (
        ("extract_context_only", lambda b: extract_context(b, k, l1, l2, generator=gen)),
        ("mask_atoms_only", lambda b: mask_atoms(b, 0.15, mask_edge=True, generator=gen)),
        ("sample_negative_edges_only", lambda b: sample_negative_edges(b, generator=gen)),
    ):
        _sync(device)
        t0 = time.perf_counter()
        for b in batches:
            fn(b)
        _sync(device)
        out[f"{name}_graphs_per_s"] = n / (time.perf_counter() - t0)
    return out


def bench_baseline(store, batch_size, num, k, l1, l2, seed) -> dict:
    rng = np.random.default_rng(seed)
    order = torch.randperm(len(store), generator=torch.Generator().manual_seed(seed))[:num]
    t0 = time.perf_counter()
    for chunk in torch.split(order, batch_size):
        reference_collate([reference_transform(store[int(i)], k, l1, l2, rng) for i in chunk])
    dt = time.perf_counter() - t0
    return {"graphs": int(order.numel()), "seconds": dt, "graphs_per_s": order.numel() / dt}


def bench_train(store, batch_size, device, steps, amp, seed, emb_dim, num_layer) -> dict:
    from gnnpretrain.strategies import build_strategy

    torch.manual_seed(seed)
    enc = dict(num_layer=num_layer, emb_dim=emb_dim, JK="last", drop_ratio=0.0, gnn_type="gin")
    strategy = build_strategy("contextpred", encoder_kwargs=enc).to(device)
    opt = torch.optim.Adam(strategy.parameters(), lr=1e-3)
    loader = GraphStoreLoader(store, batch_size, shuffle=True, seed=seed, drop_last=True)
    batches = [b for _, b in zip(range(steps + 2), loader)]
    if len(batches) < 3:
        raise SystemExit(f"need at least {3 * batch_size} molecules for the training benchmark")
    dev_batches = [b.to(device) for b in batches]
    gen = torch.Generator(device=device).manual_seed(seed)
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16) if amp else nullcontext()
    )
    k, l1, l2 = strategy.k, strategy.r1, strategy.r2

    def full_step(b):
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss, _ = strategy(b, generator=gen)
        loss.backward()
        opt.step()

    pairs = [extract_context(b, k, l1, l2, generator=gen) for b in dev_batches]

    def bare_step(p):
        opt.zero_grad(set_to_none=True)
        with autocast:
            s = strategy.gnn(p.sub_x, p.sub_edge_index, p.sub_edge_attr)
            c = strategy.context_gnn(p.ctx_x, p.ctx_edge_index, p.ctx_edge_attr)
            loss = s.float().mean() + c.float().mean()
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out = {}
    for name, fn, items in (("full_step", full_step, dev_batches), ("bare_gnn_passes", bare_step, pairs)):
        for it in items[:2]:  # warm-up
            fn(it)
        _sync(device)
        t0 = time.perf_counter()
        graphs = 0
        for b, it in zip(batches[2:], items[2:]):
            fn(it)
            graphs += b.num_graphs
        _sync(device)
        dt = time.perf_counter() - t0
        out[name] = {"graphs": graphs, "seconds": dt, "graphs_per_s": graphs / dt}
    out["full_over_bare_time"] = out["full_step"]["seconds"] / out["bare_gnn_passes"]["seconds"]
    if device.type == "cuda":
        out["cuda_max_memory_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def cpu_info() -> dict:
    """``lscpu``'s model name and the vector / matrix flags that decide CPU GNN speed, plus the core count."""
    import os
    import subprocess

    info: dict = {"model_name": platform.processor() or platform.machine(), "flags": {}, "usable_cores": None}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if fields.get("Model name"):
        info["model_name"] = fields["Model name"]
    flags = set(fields.get("Flags", "").split())
    info["flags"] = {f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")}
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cores"] = os.cpu_count()
    return info


def _strategy_transform(strategy, batch, gen):
    """The strategy's data work alone (no GNN): what its ``forward`` does before encoding."""
    name = strategy.name
    if name == "graphcl":
        return strategy.views(batch, gen)
    if name == "graphmae":
        return strategy.mask(batch, gen)
    if name == "contextpred":
        return strategy.extract_pair(batch, gen)
    if name == "attrmasking":
        from gnnpretrain.data import mask_atoms

        return mask_atoms(batch, strategy.mask_rate, mask_edge=strategy.mask_edge, generator=gen)
    if name == "edgepred":
        from gnnpretrain.data import sample_negative_edges

        return sample_negative_edges(batch, generator=gen)
    return None


def bench_strategies(store, names, batch_size, device, steps, repeats, seed, emb_dim, num_layer) -> dict:
    """Training steps of several strategies on the same batches, interleaved round-robin (see (c))."""
    from gnnpretrain.strategies import build_strategy

    enc = dict(num_layer=num_layer, emb_dim=emb_dim, JK="last", drop_ratio=0.0, gnn_type="gin")
    loader = GraphStoreLoader(store, batch_size, shuffle=True, seed=seed, drop_last=True)
    batches = [b.to(device) for _, b in zip(range(steps + 1), loader)]
    if len(batches) < steps + 1:
        raise SystemExit(f"need at least {(steps + 1) * batch_size} molecules for --strategies")
    warm, timed = batches[0], batches[1:]
    graphs = sum(b.num_graphs for b in timed)
    models = {}
    for name in names:
        torch.manual_seed(seed)
        strategy = build_strategy(name, encoder_kwargs=enc).to(device).train()
        models[name] = (strategy, torch.optim.Adam(strategy.parameters(), lr=1e-3),
                        torch.Generator(device=device).manual_seed(seed))

    def step(name, b):
        strategy, opt, gen = models[name]
        opt.zero_grad(set_to_none=True)
        loss, _ = strategy(b, generator=gen)
        loss.backward()
        opt.step()

    for name in names:  # warm-up
        step(name, warm)
    times: dict[str, list[float]] = {n: [] for n in names}
    transform_times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(repeats):
        for name in names:
            _sync(device)
            t0 = time.perf_counter()
            for b in timed:
                step(name, b)
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            strategy, _, gen = models[name]
            t0 = time.perf_counter()
            for b in timed:
                _strategy_transform(strategy, b, gen)
            _sync(device)
            transform_times[name].append(time.perf_counter() - t0)
    out = {}
    for name in names:
        med = float(np.median(times[name]))
        tmed = float(np.median(transform_times[name]))
        out[name] = {
            "graphs_per_step_run": graphs, "steps": len(timed), "seconds_median": med,
            "graphs_per_s": graphs / med, "all_runs_graphs_per_s": [graphs / t for t in times[name]],
            "transform_only_graphs_per_s": graphs / tmed if tmed > 0 else float("inf"),
            "transform_share_of_step": tmed / med,
            "num_parameters": sum(p.numel() for p in models[name][0].parameters()),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-molecules", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--amp", action="store_true", help="bf16 autocast in the training steps")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the target is for 1)")
    p.add_argument("--baseline-molecules", type=int, default=2000, help="molecules for the slow networkx baseline")
    p.add_argument("--train-steps", type=int, default=10, help="timed training steps (after 2 warm-up steps)")
    p.add_argument("--emb-dim", type=int, default=300)
    p.add_argument("--num-layer", type=int, default=5)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--skip-pipeline", action="store_true", help="skip (a), (a0) and the baseline check")
    p.add_argument("--strategies", default=None,
                   help="(c): comma-separated strategies timed side by side, e.g. graphcl,graphmae,contextpred")
    p.add_argument("--strategy-steps", type=int, default=5, help="(c): timed steps per strategy and repeat")
    p.add_argument("--repeats", type=int, default=3, help="repeats of (a); the median run is reported")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", default=None)
    p.add_argument("--cache", default=None)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)

    import os

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    load_before = os.getloadavg()
    k, l1, l2 = args.num_layer, args.num_layer - 1, args.num_layer - 1 + 3

    t0 = time.perf_counter()
    store = load_corpus("zinc", data_root=args.data_root, cache=args.cache, max_molecules=args.num_molecules)
    res: dict = {
        "config": {**vars(args), "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
                   "cpu": platform.processor() or platform.machine(),
                   "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                   "cpu_info": cpu_info(), "loadavg_1min_before": load_before[0]},
        "corpus": {"graphs": len(store), "nodes": int(store.node_ptr[-1]), "edges": int(store.edge_ptr[-1]),
                   "load_seconds": time.perf_counter() - t0},
    }
    print(f"corpus: {len(store)} ZINC molecules, {res['corpus']['nodes']} atoms, loaded in {res['corpus']['load_seconds']:.1f}s")

    ci = res["config"]["cpu_info"]
    print(f"cpu: {ci['model_name']}; " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in ci["flags"].items())
          + f"; {ci['usable_cores']} usable core(s); load average (1 min) {load_before[0]:.2f} at the start")

    devices = [torch.device("cpu")] + ([device] if device.type != "cpu" else [])
    if not args.skip_pipeline:
        check_baseline_agrees(store, k, l1, l2)
        print("baseline check: networkx reference and batched extraction select the same node sets")
    for dev in devices if not args.skip_pipeline else []:
        runs = [bench_pipeline(store, args.batch_size, dev, k, l1, l2, args.seed) for _ in range(args.repeats)]
        # median run by end-to-end throughput (a shared machine's load varies between runs)
        r = sorted(runs, key=lambda x: x["graphs_per_s"])[len(runs) // 2]
        r["all_runs_graphs_per_s"] = [x["graphs_per_s"] for x in runs]
        res[f"pipeline_{dev.type}"] = r
        print(f"(a) batch assembly + context extraction [{dev.type}, {torch.get_num_threads()} CPU thread(s)]: "
              f"{r['graphs_per_s']:,.0f} graphs/s (median of {len(runs)} runs: "
              f"{', '.join(f'{v:,.0f}' for v in r['all_runs_graphs_per_s'])}; {r['graphs']} graphs, "
              f"{r['dropped_frac']:.1%} without context)")
        print(f"    stages alone: collate {r['collate_only_graphs_per_s']:,.0f}, extract_context "
              f"{r['extract_context_only_graphs_per_s']:,.0f}, mask_atoms(mask_edge) {r['mask_atoms_only_graphs_per_s']:,.0f}, "
              f"sample_negative_edges {r['sample_negative_edges_only_graphs_per_s']:,.0f} graphs/s")
    res["maxrss_mb_after_pipeline"] = _maxrss_mb()

    if not args.skip_pipeline:
        base = bench_baseline(store, args.batch_size, min(args.baseline_molecules, len(store)), k, l1, l2, args.seed)
        res["baseline_networkx_cpu"] = base
        ratio = res["pipeline_cpu"]["graphs_per_s"] / base["graphs_per_s"]
        res["speedup_vs_baseline_cpu"] = ratio
        print(f"(a0) reference-style networkx pipeline [cpu]: {base['graphs_per_s']:,.0f} graphs/s "
              f"({base['graphs']} graphs) -> batched is {ratio:.1f}x faster")

    if not args.skip_train:
        for dev in devices:
            r = bench_train(store, args.batch_size, dev, args.train_steps, args.amp and dev.type == "cuda",
                            args.seed, args.emb_dim, args.num_layer)
            res[f"train_{dev.type}"] = r
            print(f"(b) contextpred step [{dev.type}{', bf16 autocast' if args.amp and dev.type == 'cuda' else ''}]: "
                  f"full {r['full_step']['graphs_per_s']:,.0f} graphs/s, two bare GNN passes "
                  f"{r['bare_gnn_passes']['graphs_per_s']:,.0f} graphs/s, full/bare time = {r['full_over_bare_time']:.2f}"
                  + (f", CUDA peak {r['cuda_max_memory_allocated_mb']:.0f} MiB" if "cuda_max_memory_allocated_mb" in r else ""))
    if args.strategies:
        names = [n.strip() for n in args.strategies.split(",") if n.strip()]
        for dev in devices:
            r = bench_strategies(store, names, args.batch_size, dev, args.strategy_steps, args.repeats, args.seed,
                                 args.emb_dim, args.num_layer)
            res[f"strategies_{dev.type}"] = r
            threads = torch.get_num_threads() if dev.type == "cpu" else None
            print(f"(c) training steps side by side [{dev.type}, GIN {args.num_layer} x {args.emb_dim}, batch "
                  f"{args.batch_size}" + (f", {threads} thread(s)" if threads else "") + f"; median of {args.repeats} "
                  f"interleaved runs of {args.strategy_steps} steps]:")
            for name, v in r.items():
                per_core = f" = {v['graphs_per_s'] / threads:,.1f} graphs/s per core" if threads else ""
                print(f"    {name:12s} {v['graphs_per_s']:8,.1f} graphs/s{per_core} (runs: "
                      f"{', '.join(f'{x:,.1f}' for x in v['all_runs_graphs_per_s'])}); its transform alone "
                      f"{v['transform_only_graphs_per_s']:,.0f} graphs/s ({v['transform_share_of_step']:.1%} of the step); "
                      f"{v['num_parameters']:,} parameters")
    res["loadavg_1min_after"] = os.getloadavg()[0]
    print(f"load average (1 min): {load_before[0]:.2f} at the start, {res['loadavg_1min_after']:.2f} at the end")
    res["maxrss_mb"] = _maxrss_mb()
    print(f"peak memory: max RSS {res['maxrss_mb']:.0f} MiB" + ("" if args.skip_pipeline else
          f" (after the pipeline alone: {res['maxrss_mb_after_pipeline']:.0f} MiB)"))
    if device.type == "cpu":
        print("no GPU used in this run (pass --device cuda on a machine with one)")
    if args.json:
        atomic_write_json(args.json, res)
    return res


if __name__ == "__main__":
    main()
