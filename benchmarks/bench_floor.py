"""Fine-tuning speed against its matrix-multiply floor, on one CPU thread (issue 18; a benchmark, not a test).

Why: "fused is 1.5x the separate loop" says nothing about how much is left. A GIN 5 x 300 training
step is mostly dense products (about 260 MFLOP per graph, forward + backward); the time those
products take *alone*, on the same shapes, is a floor no loop around them can beat, and each loop's
distance from it is what its other work (gathers, scatters, BatchNorm, dropout, the optimizer,
Python) costs. In one run, each variant in its own subprocess, the variants interleaved round by
round (so a change in the machine's load hits all of them), on BBBP (scaffold split's training
graphs), batch 32, dropout 0.5, G models:

* ``floor-model``: the plain model's products only — every ``nn.Linear`` of the encoder on each
  model's node rows and the head on its graph rows, forward (``addmm``), input gradient and weight
  gradient (``mm``), per model, on the row counts of the very batches the fused group trains on,
  each model with its own weights and activations (random values), outputs preallocated. What the
  separate loop, the reference loop and the fused exact kernels all multiply.
* ``floor-fused``: the same for the products the fused sparse kernels actually run (layer 0's
  first product on the embedding tables' rows instead of the nodes'; in bf16 on each model's node
  rows padded as :func:`gnnpretrain.nn.stacked.bf16_rows` pads them, other rows in 64-row blocks).
* ``separate``: our loop (``bench_finetune.py``'s, one model, PyG ``DataLoader``, ``GNNGraphPred``,
  Adam) — G separate runs take G times as long, so its graphs/s holds for any G.
* ``fused``: G models as one ``StackedGraphPred`` step, sparse kernels, fp32; and bf16 where the
  CPU multiplies bf16 natively (:func:`gnnpretrain.hardware.resolve_amp`; skipped, and said so,
  where it does not).
* ``reference`` (``--reference DIR``, a checkout of snap-stanford/pretrain-gnns): the paper's
  own ``chem/model.py`` (``GNN_graphpred``), run unchanged through a small shim of the PyG 1.0 API it
  was written against (``MessagePassing.propagate(aggr, edge_index, ...)``, ``add_self_loops``
  returning one tensor, ``torch_scatter``), trained by the loop of its ``chem/finetune.py``
  ``train()`` (float64 BCE over the labelled entries, Adam) on the same graphs.

Figures: training graphs per second of wall time (summed over models), per CPU-second of the
process (per core, and less disturbed by other processes taking turns on the cores), each as a
fraction of ``floor-model`` (and of ``floor-fused``), the ratio to ``separate``, and seconds per
seed-epoch: the split's training graphs at that rate plus one evaluation of valid + test per model
(``eval-*``: forward passes over the pre-collated evaluation batches). It prints the CPU model,
torch's CPU capability, the vector flags that decide speed (avx2 / avx512f / avx512_bf16 / amx_bf16)
and the load average before and after.

Example (the issue's setting)::

    python benchmarks/bench_floor.py --groups 10 --rounds 2 --reference ../pretrain-gnns --json /tmp/floor.json
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _api() -> SimpleNamespace:
    """The training helpers this benchmark reuses (the run layer and the fused engine)."""
    from gnnpretrain.train import fused, run
    from gnnpretrain.train.fused import group
    from gnnpretrain.train.run.evaluate import predict  # (run.evaluate is the function of that name)

    return SimpleNamespace(FinetuneConfig=run.FinetuneConfig, build_model=run.build_model, load_task=run.load_task,
                           train_loader=run.train_loader, eval_batches=run.eval_batches, predict=predict,
                           TrainStore=fused.TrainStore, index_loader=fused.index_loader,
                           make_optimizer=fused.make_optimizer, predict_group=group.predict_group)


def _config(api, spec: dict, amp: bool = False):
    return api.FinetuneConfig(dataset=spec["dataset"], gnn_type=spec["gnn_type"], num_layer=spec["num_layer"],
                              emb_dim=spec["emb_dim"], dropout=spec["dropout"], batch_size=spec["batch_size"],
                              amp=amp, progress=False)


def _group_batches(api, store, G: int, batch_size: int):
    """The index batches ``[G, B]`` of a fused group (generator g seeds model g, as bench_finetune)."""
    import torch

    gens = [torch.Generator().manual_seed(g) for g in range(G)]
    while True:
        loaders = [iter(api.index_loader(len(store), batch_size, gen)) for gen in gens]
        for _ in range(len(loaders[0])):
            yield torch.stack([next(ld) for ld in loaders])


def _timed(step, steps: int, warmup: int, repeat: int) -> dict:
    """Run ``step`` (returns graphs) ``warmup`` times, then ``repeat`` x ``steps`` timed; best rates."""
    for _ in range(warmup):
        step()
    walls, cpus, graphs = [], [], 0
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        graphs = sum(step() for _ in range(steps))
        walls.append(graphs / (time.perf_counter() - t0))
        cpus.append(graphs / max(time.process_time() - c0, 1e-9))
    return {"graphs": graphs, "graphs_per_s": max(walls), "all_graphs_per_s": walls,
            "graphs_per_cpu_s": max(cpus), "all_graphs_per_cpu_s": cpus}


# ------------------------------------------------------------------------------------------ floor
def _product_shapes(model, fused_tables: bool, table_rows: int) -> list[tuple[str, int, int]]:
    """``(rows, in, out)`` of every dense product of one plain model: ``rows`` is ``"nodes"``,
    ``"graphs"`` or ``"tables"`` (layer 0's first product in the fused sparse kernels)."""
    from torch import nn

    shapes = []
    for layer, conv in enumerate(model.gnn.gnns):
        linears = [m for m in conv.modules() if isinstance(m, nn.Linear)]
        for k, lin in enumerate(linears):
            rows = "tables" if (fused_tables and layer == 0 and k == 0) else "nodes"
            shapes.append((rows, lin.in_features, lin.out_features))
    head = model.graph_pred_linear
    shapes.append(("graphs", head.in_features, head.out_features))
    return shapes


def _measure_floor(spec: dict) -> dict:
    """The dense products of the fused group's steps, alone (see the module docstring)."""
    import torch

    torch.set_num_threads(spec["threads"])
    from gnnpretrain.nn.input import NUM_ATOM_TYPE, NUM_BOND_DIRECTION, NUM_BOND_TYPE, NUM_CHIRALITY_TAG
    from gnnpretrain.nn.stacked import BF16_ROW_BUCKET, BF16_TAIL_STEP, bf16_rows
    from gnnpretrain.utils import seed_everything

    api = _api()
    cfg = _config(api, spec)
    task = api.load_task(cfg)
    seed_everything(0)
    model = api.build_model(task, cfg)
    G, B = spec["G"], spec["batch_size"]
    fused = spec["kind"] == "floor-fused"
    tables = fused and spec["gnn_type"] != "gat"
    fused_layout = tables and cfg.JK == "last"  # StackedGraphPred's padded bf16 rows (CPU, sparse kernels)
    table_rows = NUM_ATOM_TYPE + NUM_CHIRALITY_TAG + (NUM_BOND_TYPE + NUM_BOND_DIRECTION if spec["gnn_type"] == "gin" else 0)
    shapes = _product_shapes(model, tables, table_rows)
    dtype = torch.bfloat16 if spec["precision"] == "bf16" else torch.float32
    bucket = dtype == torch.bfloat16  # the fused bf16 kernels' row blocks (compiled shapes reused)
    store = api.TrainStore(task.graphs("train"))
    it = _group_batches(api, store, G, B)
    total = spec["warmup"] + spec["steps"] * spec["repeat"]
    row_counts = [store.num_nodes[next(it)].sum(1).tolist() for _ in range(total)]
    cap = {"nodes": max(max(r) for r in row_counts) + BF16_ROW_BUCKET, "graphs": B + BF16_ROW_BUCKET,
           "tables": table_rows + BF16_ROW_BUCKET}
    gen = torch.Generator().manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen).to(dtype)

    # per model and product: its own weight, input, output, output gradient, input gradient
    bufs = [[dict(w=rnd(o, i), b=rnd(o), x=rnd(cap[r], i), y=torch.empty(cap[r], o, dtype=dtype), gy=rnd(cap[r], o),
                  gx=torch.empty(cap[r], i, dtype=dtype), gw=torch.empty(o, i, dtype=dtype)) for r, i, o in shapes]
            for _ in range(G)]

    def pieces(n: int, rows: str) -> list[tuple[int, int]]:
        if not bucket:
            return [(0, n)]
        if rows == "nodes" and fused_layout:  # the bf16 row layout: each model's nodes padded, one product
            return [(0, bf16_rows(n))]
        # an aligned row count is one product; else whole blocks, then the tail's zero-padded tile
        head = n if bf16_rows(n) == n else n // BF16_ROW_BUCKET * BF16_ROW_BUCKET
        tail = n - head
        tile = -(-tail // BF16_TAIL_STEP) * BF16_TAIL_STEP
        return ([(0, head)] if head else []) + ([(head, head + tile)] if tail else [])

    flops = [0]
    state = {"k": 0}

    def step() -> int:
        counts = row_counts[state["k"] % len(row_counts)]
        state["k"] += 1
        for g in range(G):
            for (r, i, o), t in zip(shapes, bufs[g]):
                n = {"nodes": counts[g], "graphs": B, "tables": table_rows}[r]
                for a, e in pieces(n, r):
                    torch.addmm(t["b"], t["x"][a:e], t["w"].t(), out=t["y"][a:e])      # forward
                    torch.mm(t["gy"][a:e], t["w"], out=t["gx"][a:e])                 # input gradient
                    torch.mm(t["gy"][a:e].t(), t["x"][a:e], out=t["gw"])             # weight gradient
                    flops[0] += 3 * 2 * (e - a) * i * o
        return G * B

    for _ in range(spec["warmup"]):
        step()
    flops[0] = 0
    out = _timed(step, spec["steps"], 0, spec["repeat"])
    out["gflop_per_graph"] = flops[0] / out["graphs"] / spec["repeat"] / 1e9
    out["gflop_per_cpu_s"] = out["gflop_per_graph"] * out["graphs_per_cpu_s"]
    out["shapes"] = shapes
    return out


# -------------------------------------------------------------------------------------- reference
class _OldMessagePassing:
    """PyG 1.0's ``MessagePassing`` as the reference code calls it (written from its documented
    behaviour): ``propagate(aggr, edge_index, **kwargs)`` gathers ``x_i = x[edge_index[0]]`` and
    ``x_j = x[edge_index[1]]``, aggregates the messages at ``edge_index[0]`` and passes the result to
    ``update``."""

    @staticmethod
    def build():
        import torch
        from torch_geometric.utils import scatter

        class MessagePassing(torch.nn.Module):
            def __init__(self, aggr: str = "add") -> None:
                super().__init__()
                self.aggr = aggr
                self.message_args = inspect.getfullargspec(self.message)[0][1:]
                self.update_args = inspect.getfullargspec(self.update)[0][2:]

            def propagate(self, aggr, edge_index, **kwargs):
                kwargs["edge_index"] = edge_index
                size, args = None, []
                for arg in self.message_args:
                    if arg[-2:] in ("_i", "_j"):
                        tmp = kwargs[arg[:-2]]
                        size = tmp.size(0)
                        args.append(tmp[edge_index[0 if arg[-2:] == "_i" else 1]])
                    else:
                        args.append(kwargs[arg])
                out = self.message(*args)
                out = scatter(out, edge_index[0], dim=0, dim_size=size, reduce={"add": "sum"}.get(aggr, aggr))
                return self.update(out, *[kwargs[a] for a in self.update_args])

            def message(self, x_j):
                return x_j

            def update(self, aggr_out):
                return aggr_out

        return MessagePassing


def _reference_module(folder: str):
    """The reference's ``chem/model.py`` loaded with the PyG 1.0 names it imports supplied by shims."""
    import torch
    import torch_geometric.nn as pyg_nn
    import torch_geometric.nn.inits as inits
    import torch_geometric.utils as pyg_utils
    from torch_geometric.utils import scatter

    path = Path(folder) / "chem" / "model.py"
    if not path.is_file():
        raise SystemExit(f"--reference {folder}: no chem/model.py there (a checkout of snap-stanford/pretrain-gnns)")

    def add_self_loops(edge_index, num_nodes=None):  # PyG 1.0: returns the edge index only
        loop = torch.arange(num_nodes, dtype=torch.long, device=edge_index.device).unsqueeze(0).repeat(2, 1)
        return torch.cat([edge_index, loop], dim=1)

    def softmax(src, index, num_nodes=None):  # PyG 1.0 signature
        return pyg_utils.softmax(src, index, num_nodes=num_nodes)

    shims = {
        "torch_geometric.nn": SimpleNamespace(MessagePassing=_OldMessagePassing.build(), global_add_pool=pyg_nn.global_add_pool,
                                              global_mean_pool=pyg_nn.global_mean_pool, global_max_pool=pyg_nn.global_max_pool,
                                              GlobalAttention=getattr(pyg_nn, "GlobalAttention", None), Set2Set=pyg_nn.Set2Set),
        "torch_geometric.utils": SimpleNamespace(add_self_loops=add_self_loops, degree=pyg_utils.degree, softmax=softmax),
        "torch_scatter": SimpleNamespace(scatter_add=lambda src, index, dim=0, dim_size=None: scatter(src, index, dim=dim, dim_size=dim_size, reduce="sum")),
        "torch_geometric.nn.inits": SimpleNamespace(glorot=inits.glorot, zeros=inits.zeros),
    }
    saved = {k: sys.modules.get(k) for k in shims}
    try:
        sys.modules.update(shims)  # only while the file's imports run
        spec = importlib.util.spec_from_file_location("pretrain_gnns_chem_model", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return mod


def _measure_reference(spec: dict) -> dict:
    """The reference's model and its ``train()`` loop on our graphs (labels 0/1/nan -> its -1/1/0)."""
    import torch

    torch.set_num_threads(spec["threads"])
    from gnnpretrain.utils import seed_everything

    api = _api()
    cfg = _config(api, spec)
    task = api.load_task(cfg)
    ref = _reference_module(spec["reference"])
    seed_everything(0)
    model = ref.GNN_graphpred(spec["num_layer"], spec["emb_dim"], task.num_tasks, JK="last", drop_ratio=spec["dropout"],
                              graph_pooling="mean", gnn_type=spec["gnn_type"])
    seed_everything(0)
    ours = api.build_model(task, cfg)
    n_ref, n_ours = (sum(p.numel() for p in m.parameters()) for m in (model, ours))
    if n_ref != n_ours:
        raise SystemExit(f"reference model has {n_ref} parameters, ours {n_ours}: not the same architecture")
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.decay)
    criterion = torch.nn.BCEWithLogitsLoss(reduction="none")
    model.train()

    def batches():
        while True:
            yield from api.train_loader(task, cfg.batch_size, 0, 0)

    it = batches()

    def step() -> int:  # chem/finetune.py train(), per batch
        batch = next(it)
        pred = model(batch.x, batch.edge_index, batch.edge_attr, batch.batch)
        y01 = batch.y.view(pred.shape).to(torch.float64)
        y = torch.where(torch.isnan(y01), torch.zeros_like(y01), 2 * y01 - 1)  # the reference's -1 / 0 / 1
        is_valid = y ** 2 > 0
        loss_mat = criterion(pred.double(), (y + 1) / 2)
        loss_mat = torch.where(is_valid, loss_mat, torch.zeros(loss_mat.shape).to(loss_mat.device).to(loss_mat.dtype))
        optimizer.zero_grad()
        loss = torch.sum(loss_mat) / torch.sum(is_valid)
        loss.backward()
        optimizer.step()
        return batch.num_graphs

    out = _timed(step, spec["steps"], spec["warmup"], spec["repeat"])
    out["num_params"] = n_ref
    return out


# ------------------------------------------------------------------------------------- evaluation
def _measure_eval(spec: dict) -> dict:
    """Seconds of one evaluation (valid + test, pre-collated batches) per model, best of ``repeat``."""
    import torch

    torch.set_num_threads(spec["threads"])
    from gnnpretrain.nn.stacked import StackedGraphPred
    from gnnpretrain.utils import seed_everything

    api = _api()
    amp = spec["precision"] == "bf16"
    cfg = _config(api, spec, amp=amp)
    task = api.load_task(cfg)
    parts = [b for part in ("valid", "test") for b in api.eval_batches(task, part, cfg.eval_batch_size)]
    device = torch.device("cpu")
    G = spec["G"]
    if spec["kind"] == "eval-fused":
        plain = []
        for g in range(G):
            seed_everything(g)
            plain.append(api.build_model(task, cfg))
        stacked = StackedGraphPred(plain, amp=amp, kernels="sparse")

        def run():
            api.predict_group(stacked, parts, device)
    elif spec["kind"] == "eval-reference":
        ref = _reference_module(spec["reference"])
        seed_everything(0)
        model = ref.GNN_graphpred(spec["num_layer"], spec["emb_dim"], task.num_tasks, JK="last",
                                  drop_ratio=spec["dropout"], graph_pooling="mean", gnn_type=spec["gnn_type"])
        model.eval()
        G = 1

        def run():  # chem/finetune.py eval(), without the ROC-AUC
            with torch.no_grad():
                for batch in parts:
                    model(batch.x, batch.edge_index, batch.edge_attr, batch.batch)
    else:
        seed_everything(0)
        model = api.build_model(task, cfg)
        G = 1

        def run():
            api.predict(model, parts, device, amp)

    run()  # warm-up (bf16: shapes compiled)
    best, cpu_best = math.inf, math.inf
    for _ in range(max(1, spec["repeat"])):
        t0, c0 = time.perf_counter(), time.process_time()
        run()
        best, cpu_best = min(best, time.perf_counter() - t0), min(cpu_best, time.process_time() - c0)
    return {"eval_s_per_model": best / G, "eval_cpu_s_per_model": cpu_best / G,
            "eval_graphs": sum(b.num_graphs for b in parts)}


def _measure(spec: dict) -> dict:
    kind = spec["kind"]
    if kind.startswith("floor"):
        out = _measure_floor(spec)
    elif kind == "reference":
        out = _measure_reference(spec)
    elif kind.startswith("eval"):
        out = _measure_eval(spec)
    else:  # separate / fused: bench_finetune.py's loops
        import bench_finetune

        out = bench_finetune._measure(spec)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {**spec, **out}


# ---------------------------------------------------------------------------------------- driver
def _specs(args, native_bf16: bool, notes: list[str]) -> list[dict]:
    base = dict(dataset=args.dataset, gnn_type=args.gnn_type, num_layer=args.num_layer, emb_dim=args.emb_dim,
                batch_size=args.batch_size, dropout=args.dropout, device="cpu", threads=args.threads,
                warmup=args.warmup, warmup_model_steps=args.warmup_model_steps, repeat=args.repeat,
                reference=args.reference)
    G = args.groups
    precisions = [p for p in args.precisions.split(",") if p]
    if "bf16" in precisions and not native_bf16:
        precisions.remove("bf16")
        notes.append("bf16 skipped: this CPU has no native bf16 (resolve_amp would run fp32)")
    fused_steps = max(args.min_steps, math.ceil(args.graphs / (G * args.batch_size)))
    sep_steps = max(args.min_steps, math.ceil(args.graphs / args.batch_size))
    specs = []
    for prec in precisions:
        amp = prec == "bf16"
        common = {**base, "precision": prec, "amp": amp}
        if prec == "fp32":
            specs.append({**common, "kind": "floor-model", "G": G, "steps": fused_steps, "warmup": 1})
        specs.append({**common, "kind": "floor-fused", "G": G, "steps": fused_steps, "warmup": 1})
        if prec == "fp32":
            specs.append({**common, "kind": "separate", "G": 0, "steps": sep_steps})
            if args.reference:
                specs.append({**common, "kind": "reference", "G": 0, "steps": sep_steps})
        specs.append({**common, "kind": "fused", "G": G, "steps": fused_steps, "kernels": "sparse"})
    if args.eval:
        for prec in precisions:
            common = {**base, "precision": prec, "amp": prec == "bf16", "G": G, "steps": 0}
            if prec == "fp32":
                specs.append({**common, "kind": "eval-separate"})
                if args.reference:
                    specs.append({**common, "kind": "eval-reference"})
            specs.append({**common, "kind": "eval-fused"})
    return specs


def _name(r: dict) -> str:
    return {"fused": f"fused G={r['G']} (sparse)", "floor-model": f"floor: model products, G={r['G']}",
            "floor-fused": f"floor: fused products, G={r['G']}"}.get(r["kind"], r["kind"])


def _report(results: list[dict], train_graphs: int) -> list[str]:
    """The summary lines (and ratio fields added to ``results``)."""
    by = {(r["kind"], r["precision"]): r for r in results if "error" not in r}
    lines = []
    floor = by.get(("floor-model", "fp32"))
    sep = by.get(("separate", "fp32"))
    ref = by.get(("reference", "fp32"))
    header = f"{'precision':9s} {'variant':32s} {'graphs/s':>9s} {'per CPU-s':>9s} {'of floor':>9s} {'of own floor':>12s} " \
             f"{'vs separate':>11s} {'vs reference':>12s} {'s/seed-epoch':>12s}"
    lines.append(header)
    for r in results:
        if r["kind"].startswith("eval") or "error" in r:
            continue
        prec, rate = r["precision"], r["graphs_per_cpu_s"]
        own = by.get(("floor-fused", prec)) if r["kind"] == "fused" else None
        ev = by.get(({"fused": "eval-fused", "separate": "eval-separate", "reference": "eval-reference"}.get(r["kind"], ""), prec))
        r["fraction_of_model_floor"] = rate / floor["graphs_per_cpu_s"] if floor else None
        r["fraction_of_own_floor"] = rate / own["graphs_per_cpu_s"] if own else None
        r["vs_separate_fp32"] = rate / sep["graphs_per_cpu_s"] if sep else None
        r["vs_reference_fp32"] = rate / ref["graphs_per_cpu_s"] if ref else None
        if not r["kind"].startswith("floor"):
            r["s_per_seed_epoch_train"] = train_graphs / rate
            r["s_per_seed_epoch"] = train_graphs / rate + (ev["eval_cpu_s_per_model"] if ev else 0.0)

        def f(v, spec="{:.2f}"):
            return spec.format(v) if v is not None else "-"

        lines.append(f"{prec:9s} {_name(r):32s} {r['graphs_per_s']:9.1f} {rate:9.1f} {f(r['fraction_of_model_floor']):>9s} "
                     f"{f(r['fraction_of_own_floor']):>12s} {f(r['vs_separate_fp32']):>11s} {f(r['vs_reference_fp32']):>12s} "
                     f"{f(r.get('s_per_seed_epoch'), '{:.2f}'):>12s}")
    for r in results:
        if r["kind"].startswith("floor") and "error" not in r:
            lines.append(f"  {r['precision']} {_name(r)}: {r['gflop_per_graph'] * 1e3:.0f} MFLOP per training graph, "
                         f"{r['gflop_per_cpu_s']:.1f} GFLOP per CPU-second")
        if r["kind"].startswith("eval") and "error" not in r:
            lines.append(f"  {r['precision']} {r['kind']}: {r['eval_cpu_s_per_model']:.2f} CPU-s per model "
                         f"({r['eval_graphs']} valid + test graphs)")
    return lines


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="bbbp")
    p.add_argument("--gnn-type", default="gin")
    p.add_argument("--num-layer", type=int, default=5)
    p.add_argument("--emb-dim", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--groups", type=int, default=10, help="models in the fused group (G)")
    p.add_argument("--precisions", default="fp32,bf16", help="bf16 runs only where the CPU multiplies it natively")
    p.add_argument("--graphs", type=int, default=960, help="timed training graphs per variant and round (whole steps)")
    p.add_argument("--min-steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1, help="untimed steps per variant (at least)")
    p.add_argument("--warmup-model-steps", type=int, default=24, help="untimed model-steps (bf16 shapes compiled)")
    p.add_argument("--rounds", type=int, default=2, help="the whole list this many times, interleaved; best round shown")
    p.add_argument("--repeat", type=int, default=1, help="timed repetitions per variant and round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reference", default=None, metavar="DIR",
                   help="a checkout of snap-stanford/pretrain-gnns: also time the paper's own model and loop")
    p.add_argument("--no-eval", dest="eval", action="store_false", help="skip the evaluation timings")
    p.add_argument("--json", default=None, help="write all figures here")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(_measure(json.loads(args.one))))
        return {}

    import torch

    from gnnpretrain import hardware

    info = hardware.hardware_info("cpu")
    notes: list[str] = []
    specs = _specs(args, info["native_bf16"], notes)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    print(f"hardware: {hardware.describe(info)}; torch {torch.__version__}, {args.threads} thread(s)")
    for n in notes:
        print(n)
    load_before, t_start = os.getloadavg(), time.time()
    print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}", flush=True)
    results: list[dict | None] = [None] * len(specs)
    loads = []
    for rnd in range(args.rounds):
        for k, spec in enumerate(specs):
            loads.append(os.getloadavg()[0])
            proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], capture_output=True, text=True, env=env)
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not line:
                print(f"FAILED {spec['kind']} {spec['precision']}: {proc.stderr[-1500:]}", file=sys.stderr)
                results[k] = results[k] or {**spec, "error": proc.stderr[-500:]}
                continue
            r = json.loads(line[0][len("RESULT "):])
            prev = results[k]
            if prev is not None and "error" not in prev:
                if "all_graphs_per_s" in r:
                    for key in ("all_graphs_per_s", "all_graphs_per_cpu_s"):
                        r[key] = prev[key] + r[key]
                    r["graphs_per_s"], r["graphs_per_cpu_s"] = max(r["all_graphs_per_s"]), max(r["all_graphs_per_cpu_s"])
                    if "gflop_per_graph" in r:
                        r["gflop_per_cpu_s"] = r["gflop_per_graph"] * r["graphs_per_cpu_s"]
                else:
                    for key in ("eval_s_per_model", "eval_cpu_s_per_model"):
                        r[key] = min(r[key], prev[key])
            results[k] = r
            print(f"  round {rnd + 1}: {spec['precision']} {_name(spec)} done", flush=True)
    results = [r for r in results if r is not None]
    api = _api()
    task = api.load_task(_config(api, specs[0]))
    train_graphs = len(task.graphs("train"))
    lines = _report(results, train_graphs)
    load_after = os.getloadavg()
    wall = round(time.time() - t_start, 1)
    print()
    print("\n".join(lines))
    print(f"\nrates are the best round's; 'of floor' = graphs per CPU-second over floor-model's (fp32), 'of own floor' "
          f"over floor-fused's in the same precision; s/seed-epoch = {train_graphs} training graphs at that rate + one "
          "evaluation of valid + test (CPU-seconds)")
    print(f"wall {wall} s; load average before {' '.join(f'{v:.2f}' for v in load_before)}, after "
          f"{' '.join(f'{v:.2f}' for v in load_after)}; 1-minute load at each variant's start: mean "
          f"{sum(loads) / len(loads):.2f}, max {max(loads):.2f}")
    out = {
        "command": " ".join([Path(sys.executable).name, "benchmarks/bench_floor.py", *(argv if argv is not None else sys.argv[1:])]),
        "hardware": info, "hardware_line": hardware.describe(info), "torch": torch.__version__, "threads": args.threads,
        "notes": notes, "load_before": load_before, "load_after": load_after,
        "load_at_starts": {"mean": sum(loads) / len(loads), "max": max(loads)}, "wall_s": wall,
        "train_graphs": train_graphs, "results": results, "summary": lines,
    }
    if args.json:
        from gnnpretrain.utils import atomic_write_json

        atomic_write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
