"""G ``GNNGraphPred`` models of one architecture evaluated as *one* computation.

Why: the fine-tuning protocol trains many models that differ only in seed and starting checkpoint
(10 seeds x every pre-training strategy per data set). One model at batch 32 leaves most of a GPU
idle and pays Python/launch overhead per layer; G models stacked on a leading axis share every
step. :mod:`gnnpretrain.train.fused` trains them; this module only computes.

Parameters: every tensor of the plain model stacked to ``[G, *shape]`` (:class:`StackedGraphPred` is
built *from* G plain models, so initialisation and checkpoint loading stay those of
:func:`gnnpretrain.train.run.data.build_model`); :meth:`StackedGraphPred.unstack` gives model g's
state dict back. (``torch.func.vmap`` over ``functional_call`` of the PyG model ran 3-4x *slower*
than G separate steps on one CPU thread, and cannot give each model its own graphs.)

Three kernel sets (:data:`KERNELS`), measured in ``benchmarks/RESULTS.md``:

* ``exact`` (CPU): nodes model after model (unpadded); dense layers, BatchNorm and GAT attention
  call torch's own kernels model by model on each model's rows; message passing, softmax and pooling
  on the disjoint union with the plain layers' PyG ``scatter``/``softmax`` and edge order; dropout
  from per-model generators with ``bernoulli_`` on a separate run's shape. Bit-equal to separate runs.
* ``sparse`` (CPU, fast): the same layout and per-model BatchNorm, but each GIN/GCN/GraphSAGE layer's
  neighbourhood sum (messages *and* edge embeddings) is one product with a sparse matrix built once
  per batch, readout is a sparse product, dense layers write every model's rows into one output
  (:class:`_PerModelLinear`; casts model by model; in bf16 each model's nodes are followed by pad
  rows up to :func:`bf16_rows`, so each product is one in-place call on a shape oneDNN has compiled
  before — other row counts run as blocks of :data:`BF16_ROW_BUCKET` rows and a zero-padded tail
  tile), layer 0's first product runs on the
  embedding tables' rows instead of the nodes' (:meth:`StackedGraphPred._input_operator`, ~10% of a
  GIN step's matrix FLOPs), the GIN MLP's ReLU lives inside its two products, and in training each
  layer's BatchNorm + ReLU + dropout is one autograd node (:class:`_BatchNormReluDropout`, masks
  from 8 or 16 raw random bits per element). A training step is mostly its dense products: in fp32
  it ran at 0.85 of the throughput of those products alone, 1.38x the separate loop (10 GIN 5 x 300
  models, one thread of an AMD EPYC Zen 4 with avx512f/avx512_bf16, shared machine;
  ``benchmarks/bench_floor.py``, benchmarks/RESULTS.md). Equal to ``exact`` to float rounding.
* ``batched`` (GPU): nodes in a padded ``[G, Nmax, d]`` block, every dense layer one batched matmul,
  BatchNorm statistics over real nodes only (pads masked), attention split into node and edge-type
  parts; far fewer kernel launches.

Supported: ``gnn_type`` gin/gcn/graphsage/gat, ``input="reference"``, every JK mode, pooling
sum/mean/max, no centre pooling. :func:`unsupported_reason` names anything else (callers fall back to
separate runs).

``amp=True`` runs the dense layers' products in bfloat16 (inputs cast, output cast back to fp32, or
kept in bf16 between the two linears of a GIN MLP) — what ``torch.autocast`` does to
``linear``/``bmm`` — while message passing, BatchNorm, softmax, pooling and the loss stay fp32.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax

from gnnpretrain.nn.input import NUM_ATOM_TYPE, NUM_BOND_DIRECTION, NUM_BOND_TYPE, NUM_CHIRALITY_TAG, SELF_LOOP_BOND_TYPE

__all__ = ["FusedBatch", "StackedGraphPred", "unsupported_reason", "bf16_rows", "SUPPORTED_GNN_TYPES", "SUPPORTED_POOLINGS", "KERNELS"]

SUPPORTED_GNN_TYPES = ("gin", "gcn", "graphsage", "gat")
SUPPORTED_POOLINGS = ("sum", "mean", "max")
#: Kernel sets of :class:`StackedGraphPred`: ``exact`` (CPU, bit-equal to separate runs),
#: ``sparse`` (CPU, fast: sparse-matrix aggregation, rounding-equal), ``batched`` (GPU: padded
#: layout, one batched matmul per layer).
KERNELS = ("exact", "sparse", "batched")
_BN_EPS = 1e-5
_BN_MOMENTUM = 0.1


def unsupported_reason(model: nn.Module) -> str | None:
    """``None`` if ``model`` (a ``GNNGraphPred``) can be stacked, else why not (one short phrase)."""
    gnn = getattr(model, "gnn", None)
    if gnn is None:
        return f"{type(model).__name__} is not a GNNGraphPred"
    if gnn.gnn_type not in SUPPORTED_GNN_TYPES:
        return f"gnn_type {gnn.gnn_type!r}"
    if gnn.input != "reference":
        return f"input encoder {gnn.input!r} (only the reference chem featurizer is stacked)"
    if model.graph_pooling not in SUPPORTED_POOLINGS:
        return f"graph_pooling {model.graph_pooling!r} (stacked: {', '.join(SUPPORTED_POOLINGS)})"
    if getattr(model, "center_pool", False):
        return "centre-node pooling"
    if gnn.gnn_type == "gat" and getattr(gnn.gnns[0], "heads", 2) != 2:
        return "GAT with heads != 2"
    return None


@dataclass
class FusedBatch:
    """G graph batches (one per model) as one disjoint union in padded node layout.

    ``x [G*Nmax, 2]`` (pad rows: atom 0, chirality 0), ``edge_index [2, E]`` in the flattened node
    numbering (real edges, model by model, each model's in its PyG collation order),
    ``edge_attr [E, 2]``, ``edge_model [E]``, ``counts [G]`` real nodes per model,
    ``graph_index [G*Nmax]`` = ``g*B + b`` for real nodes and ``G*B`` for pads, ``y [G, B, T]``.
    """

    x: Tensor
    edge_index: Tensor
    edge_attr: Tensor
    edge_model: Tensor
    counts: Tensor
    graph_index: Tensor
    num_models: int
    nmax: int
    num_graphs: int  # per model (B)
    y: Tensor | None = None
    padded: bool = True

    def to(self, device: torch.device) -> "FusedBatch":
        fields = {k: (v.to(device, non_blocking=True) if isinstance(v, Tensor) else v) for k, v in self.__dict__.items()}
        return FusedBatch(**fields)

    @staticmethod
    def replicate(batch, num_models: int) -> "FusedBatch":
        """The same PyG ``Batch`` for every one of ``num_models`` models (evaluation: collated once)."""
        n, e, b = batch.num_nodes, batch.edge_index.size(1), batch.num_graphs
        g = torch.arange(num_models, device=batch.x.device)
        edge_index = (batch.edge_index.unsqueeze(1) + (g * n).view(1, -1, 1)).reshape(2, -1)
        graph_index = (batch.batch.view(1, -1) + (g * b).view(-1, 1)).reshape(-1)
        y = batch.y.reshape(b, -1) if getattr(batch, "y", None) is not None else None
        return FusedBatch(
            x=batch.x.repeat(num_models, 1), edge_index=edge_index, edge_attr=batch.edge_attr.repeat(num_models, 1),
            edge_model=g.repeat_interleave(e), counts=torch.full((num_models,), n, dtype=torch.long, device=g.device),
            graph_index=graph_index, num_models=num_models, nmax=n, num_graphs=b,
            y=None if y is None else y.unsqueeze(0).expand(num_models, -1, -1), padded=False,
        )


def _linear(x: Tensor, weight: Tensor, bias: Tensor | None, amp: bool) -> Tensor:
    """Per-model ``x @ W^T + b``: ``x [G, N, in]``, ``weight [G, out, in]``, ``bias [G, out]``."""
    if amp:
        dt = torch.bfloat16
        wt = weight.to(dt).transpose(1, 2)
        if bias is None:
            return torch.bmm(x.to(dt), wt).float()
        return torch.baddbmm(bias.to(dt).unsqueeze(1), x.to(dt), wt).float()
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


def _keep_mask(n: int, d: int, keep: float, generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    """``[n, d]`` of 1 (probability ``keep``, to 1/65536) and 0, from 16 random bits per element
    (four per 64-bit draw of ``generator``; measured 1.1 ms against ``bernoulli_``'s 4.0 ms and
    ``rand``'s 2.2 ms for 720 x 300 on one thread)."""
    threshold = round(keep * 65536) - 32768
    if threshold > 32767:  # int16 holds no such bound: keep everything
        return torch.ones(n, d, dtype=dtype)
    words = -(-n * d // 4)
    bits = torch.empty(words, dtype=torch.int64).random_(-(2**63), None, generator=generator)
    bits = bits.view(torch.int16)[: n * d].view(n, d)
    return (bits < threshold).to(dtype)


def _keep_bits(n: int, d: int, keep: float, generator: torch.Generator | None, out: Tensor | None = None) -> Tensor | None:
    """``[n, d]`` of 1.0 (probability ``keep``) and 0.0, written into ``out`` if given: 8 random bits
    per element where ``keep`` is a multiple of 1/256 (the paper's dropout 0.5: exactly Bernoulli(0.5),
    half the draws of 16 bits), else 16 bits (``keep`` to 1/65536, as :func:`_keep_mask`); one
    comparison writes the floats (``torch.lt(..., out=float)``: 0.02 ms for 770 x 300, where a bool
    mask and its conversion cost 10x that). ``None``: keep everything."""
    bits, dt = (8, torch.int8) if abs(keep * 256 - round(keep * 256)) < 1e-9 else (16, torch.int16)
    levels = 1 << bits
    threshold = round(keep * levels) - levels // 2
    if threshold > levels // 2 - 1:
        return None
    words = -(-n * d * bits // 64)
    raw = torch.empty(words, dtype=torch.int64).random_(-(2**63), None, generator=generator)
    if out is None:
        out = torch.empty(n, d)
    return torch.lt(raw.view(dt)[: n * d].view(n, d), threshold, out=out)


_aten = torch.ops.aten


class _BatchNormReluDropout(torch.autograd.Function):
    """Training-mode BatchNorm (per model, batch statistics, running statistics updated), then ReLU
    (``relu``), then dropout (``masks [M, d]``: 1.0 / 0.0, kept entries scaled by ``scale``), as one
    autograd node writing one output.

    Why (sparse kernels): done with torch's ops this chain is G BatchNorm calls joined by a ``cat``,
    a ReLU, a noise tensor (another ``cat``) and a multiply, with the same again in the backward:
    about ten passes over ``[M, d]`` and five fresh ``[M, d]`` tensors per layer (fresh tensors of
    that size page-fault on every step). Here each model's rows (about 1 MB, in cache) go through
    torch's own BatchNorm kernel (``native_batch_norm.out``, bit-equal to ``F.batch_norm``) straight
    into its rows of the output, with the dropout scale folded into BatchNorm's affine
    (``relu(z) * s == relu(z * s)`` for ``s > 0``), then an in-place ReLU and an in-place mask. After
    a ReLU no mask is kept for the backward: an output entry is > 0 exactly where neither ReLU nor
    dropout stopped the gradient. The backward is torch's BatchNorm backward
    (``native_batch_norm_backward.out``) per model on the gated gradient. A bf16 input (the bf16
    products' output) is widened model by model in cache, and its gradient returned in bf16: no
    ``[M, d]`` fp32 copy of it either way. ``stride`` (the bf16 row layout): model g occupies
    ``stride[g]`` rows, its ``seg[g]`` nodes first; pad rows get 0 in the output and the gradient.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor,  # type: ignore[override]
                seg: list, stride: list, relu: bool, masks: Tensor | None, scale: float, momentum: float, eps: float) -> Tensor:
        x = x.contiguous()
        y = torch.empty(x.shape, dtype=weight.dtype, device=x.device)  # a bf16 input gives an fp32 output
        G, d = weight.shape
        w_s, b_s = weight * scale, bias * scale
        means, invstds = weight.new_empty(G, d), weight.new_empty(G, d)
        a0 = 0
        with torch.no_grad():
            for g, (n, rows) in enumerate(zip(seg, stride)):
                if rows > n:
                    y[a0 + n:a0 + rows].zero_()
                yg = y[a0:a0 + n]
                _aten.native_batch_norm.out(x[a0:a0 + n].to(weight.dtype), w_s[g], b_s[g], running_mean[g], running_var[g],
                                            True, momentum, eps, out=yg, save_mean=means[g], save_invstd=invstds[g])
                if relu:
                    yg.clamp_min_(0)
                if masks is not None:
                    yg.mul_(masks[a0:a0 + n])
                a0 += rows
        keep = masks if (masks is not None and not relu) else None  # after a ReLU the output is the gate
        ctx.save_for_backward(x, y, w_s, means, invstds, keep)
        ctx.seg, ctx.stride, ctx.scale, ctx.relu, ctx.eps = seg, stride, scale, relu, eps
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, y, w_s, means, invstds, keep = ctx.saved_tensors
        grad = grad.contiguous()
        gx = torch.empty_like(x)
        cast = x.dtype != w_s.dtype
        gw, gb = torch.empty_like(w_s), torch.empty_like(w_s)
        a0 = 0
        for g, (n, rows) in enumerate(zip(ctx.seg, ctx.stride)):
            if rows > n:
                gx[a0 + n:a0 + rows].zero_()
            gg = grad[a0:a0 + n]
            if ctx.relu:
                gg = _aten.threshold_backward(gg, y[a0:a0 + n], 0)
            elif keep is not None:
                gg = gg * keep[a0:a0 + n]
            xg = x[a0:a0 + n].to(w_s.dtype)
            gxg = torch.empty_like(xg) if cast else gx[a0:a0 + n]
            _aten.native_batch_norm_backward.out(gg, xg, w_s[g], None, None, means[g], invstds[g], True, ctx.eps,
                                                 [True, True, True], out0=gxg, out1=gw[g], out2=gb[g])
            if cast:
                gx[a0:a0 + n] = gxg
            a0 += rows
        s = ctx.scale
        return gx, gw.mul_(s), gb.mul_(s), None, None, None, None, None, None, None, None, None


def _operator_pair(rows: Tensor, cols: Tensor, vals: Tensor, shape: tuple[int, int]) -> tuple[Tensor, Tensor | None]:
    """A constant sparse matrix (duplicates summed) and its transpose, both CSR; no transpose when
    no gradient is being recorded (evaluation: the backward is never taken).

    Why not ``sparse_coo_tensor(...).coalesce()`` twice: one sort of the entries' linear positions
    gives the CSR directly and its CSC arrays are the transpose's CSR (measured on a batch of 10
    models, one thread: 13.7 -> 7.9 ms per training step for the three operators)."""
    n_rows, n_cols = shape
    key, order = torch.sort(rows * n_cols + cols)
    key, inverse = torch.unique_consecutive(key, return_inverse=True)  # duplicates (a bond type met twice) summed
    values = torch.zeros(key.numel(), dtype=vals.dtype, device=vals.device).index_add_(0, inverse, vals[order])
    crow = torch.zeros(n_rows + 1, dtype=torch.long, device=rows.device)
    torch.cumsum(torch.bincount(torch.div(key, n_cols, rounding_mode="floor"), minlength=n_rows), 0, out=crow[1:])
    with warnings.catch_warnings():  # "sparse CSR support is in beta": products of CSR x dense are all we use
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        S = torch.sparse_csr_tensor(crow, key % n_cols, values, shape, check_invariants=False)
        if not torch.is_grad_enabled():
            return S, None
        csc = S.to_sparse_csc()
        return S, torch.sparse_csr_tensor(csc.ccol_indices(), csc.row_indices(), csc.values(), (n_cols, n_rows),
                                          check_invariants=False)


def _spmm(S: Tensor, x: Tensor) -> Tensor:
    """``S @ x`` for a CSR ``S`` and a dense ``x``.

    Why not ``S @ x``: on CPU that is MKL's sparse product (``addmm_out_sparse_csr_impl_mkl``),
    which zero-fills and then copies its ``[rows, d]`` output on every call and is slow on wide
    operators; torch's own CSR kernel (``torch.sparse.mm(S, x, "sum")``, the one PyG's ``spmm``
    uses) writes the rows directly. Measured on one thread (AMD EPYC Zen 4, 2026-12-07): a layer's
    ``[7079, 7169]`` aggregation 3.9 -> 3.2 ms, layer 0's ``[7079, 1330]`` table product
    22.4 -> 4.8 ms and its transpose 33.7 -> 9.0 ms. Same sums in another order: equal to float
    rounding. The GPU (and any other layout) keeps ``S @ x``."""
    if x.device.type == "cpu" and S.layout == torch.sparse_csr:
        return torch.sparse.mm(S, x, "sum")
    return S @ x


class _SparseProduct(torch.autograd.Function):
    """``S @ x`` for a constant sparse ``S``; the backward is ``S^T @ grad`` with the transpose
    built once per batch (not re-derived by autograd for every layer)."""

    @staticmethod
    def forward(ctx, x: Tensor, S: Tensor, St: Tensor, relu_out: bool = False) -> Tensor:  # type: ignore[override]
        ctx.St = St
        out = _spmm(S, x.contiguous())
        return out.clamp_min_(0) if relu_out else out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return _spmm(ctx.St, grad.contiguous()), None, None, None


def _sparse_product(x: Tensor, S: Tensor, St: Tensor, relu_out: bool = False) -> Tensor:
    """``S @ x`` (autograd: ``St @ grad``). ``relu_out``: ReLU applied to the product in place; its
    gradient is then applied by the consumer (:class:`_PerModelLinear` with ``relu_in``)."""
    return _SparseProduct.apply(x, S, St, relu_out)


#: bf16 products run on row counts that are multiples of this. Why: oneDNN builds (JIT-compiles) a
#: bf16 matmul primitive per new shape, ~7-10 ms each on this CPU, and graph batches have a new node
#: count almost every step. Each model's rows are cut into a multiple-of-64 head (computed in place)
#: and a tail of < 64 rows computed in a zero-padded 64-row tile: a run meets a few dozen shapes, all
#: cached after the first epoch (measured: 9.8 ms -> 0.9 ms per product).
BF16_ROW_BUCKET = 64


#: In the bf16 row layout (:func:`bf16_rows`) a model of up to this many rows is padded to a multiple
#: of :data:`BF16_TAIL_STEP` rows, a larger one to a multiple of :data:`BF16_ROW_BUCKET`. Why the
#: bound: every aligned row count is a compiled shape of its own, so this keeps a run's shapes to
#: at most 64 + (rows / 64) per product (oneDNN caches 1,024 primitives); training batches of small
#: molecules (~770 rows per model at batch 32) stay on the fine grid.
BF16_FINE_ROWS = 1024


def bf16_rows(n: int) -> int:
    """Rows a model with ``n`` nodes occupies in the padded bf16 layout of the sparse kernels: ``n``
    rounded up to a multiple of 16 (up to :data:`BF16_FINE_ROWS`) or of 64 rows, so each of its bf16
    products is one call on a cached shape, in place (no tail tile, no copies)."""
    q = BF16_TAIL_STEP if n <= BF16_FINE_ROWS else BF16_ROW_BUCKET
    return -(-n // q) * q


def _head_tail(n: int) -> tuple[int, int]:
    """A bf16 product's rows as a head of whole :data:`BF16_ROW_BUCKET` blocks and a tail tile; an
    aligned row count (:func:`bf16_rows`) is all head: one product."""
    if bf16_rows(n) == n:
        return n, 0
    head = n // BF16_ROW_BUCKET * BF16_ROW_BUCKET
    return head, n - head


#: fp32 forward products of more rows than this (evaluation batches: one model's 256 graphs, ~6,000
#: rows) run in blocks of this many rows. Why: MKL's single-thread sgemm slows down on tall products
#: whose blocks fall out of cache — a 6144 x 600 x 300 product took 39 ms whole and 29 ms in blocks of
#: 1,024 rows (26 ms at 512-768; AMD EPYC Zen 4, 2026-12-07); the 300 -> 600 product is unaffected.
#: Training batches (~770 rows per model) stay one product.
FP32_ROW_BLOCK = 1024

#: The tail tile's row count is the tail rounded up to a multiple of this (16, 32, 48 or 64 rows:
#: four more cached shapes per product). Why: a 64-row bf16 product costs 136 us whatever the
#: tail, a 16-row one 54 us, and the tails are spread evenly over 1-63 rows.
BF16_TAIL_STEP = 16


def _tile(rows: Tensor) -> Tensor:
    """``rows`` (fewer than a bucket) at the top of a zero tile of the next multiple of
    :data:`BF16_TAIL_STEP` rows."""
    tile = rows.new_zeros((-(-rows.size(0) // BF16_TAIL_STEP) * BF16_TAIL_STEP, rows.size(1)))
    tile[: rows.size(0)] = rows
    return tile


class _PerModelLinear(torch.autograd.Function):
    """Model g's rows times model g's weight for every g, as one autograd node.

    Why: G ``F.linear`` calls joined by ``cat`` cost a copy of the output forward and of the
    gradient backward (``split``'s backward is a ``cat`` too), plus a cast per model under bf16.
    Here inputs and weights are cast once and each model's product is written into its rows of one
    output; the backward writes each model's input and weight gradients in place. Same products as
    ``F.linear`` (``addmm``); bias gradients are summed in fp32; ``bias=None`` for none.

    A ReLU between two of these (the GIN MLP) costs no tensor of its own: ``relu_out`` applies it
    in place to this output (no autograd node, so no ``[M, 2d]`` result and no gradient tensor is
    allocated for it; fresh tensors of that size page-fault on every step), and the consumer, given
    ``relu_in``, zeroes its input gradient where its (saved) input is 0 — exactly
    ``threshold_backward`` of ReLU, written into the gradient it has just computed. In bf16 each model's rows are a
    head of whole :data:`BF16_ROW_BUCKET` blocks plus a zero-padded tail tile, so every product has
    a cached shape; the split depends only on the model's own row count, never on its position.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, seg: list, dtype: torch.dtype,  # type: ignore[override]
                out_dtype: torch.dtype, relu_out: bool = False, relu_in: bool = False) -> Tensor:
        bucket = dtype == torch.bfloat16
        wc = weight.to(dtype)
        bc = None if bias is None else bias.to(dtype)
        cast = x.dtype != dtype
        xfull = None if cast else x.contiguous()
        out = torch.empty((x.size(0), weight.size(1)), dtype=dtype, device=x.device)
        xcs = []
        a = 0
        for g, n in enumerate(seg):
            # a cast input is cast model by model (about 1 MB, in cache just before its product)
            # rather than as one [M, in] copy: no large fresh tensor per product
            xg = x[a:a + n].to(dtype) if cast else xfull[a:a + n]
            head, tail = _head_tail(n) if bucket else (n, 0)
            # rows in blocks of FP32_ROW_BLOCK (fp32; bf16 blocks are whole 64-row buckets anyway)
            step = head if (bucket or head <= FP32_ROW_BLOCK) else FP32_ROW_BLOCK
            for r in range(0, head, max(step, 1)):
                e = min(head, r + step)
                if bc is None:
                    torch.mm(xg[r:e], wc[g].t(), out=out[a + r:a + e])
                else:
                    torch.addmm(bc[g], xg[r:e], wc[g].t(), out=out[a + r:a + e])
            if tail and tail % BF16_TAIL_STEP == 0:  # already a tile's shape (padded rows): in place
                if bc is None:
                    torch.mm(xg[head:], wc[g].t(), out=out[a + head:a + n])
                else:
                    torch.addmm(bc[g], xg[head:], wc[g].t(), out=out[a + head:a + n])
            elif tail:
                prod = torch.mm(_tile(xg[head:]), wc[g].t()) if bc is None else torch.addmm(bc[g], _tile(xg[head:]), wc[g].t())
                out[a + head:a + n] = prod[:tail]
            xcs.append(xg)
            a += n
        if relu_out:
            out.clamp_min_(0)
        ctx.save_for_backward(wc, *xcs)
        ctx.seg, ctx.bucket, ctx.relu_in = seg, bucket, relu_in
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        return out if out_dtype == dtype else out.to(out_dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        wc, *xcs = ctx.saved_tensors
        xd, wd, bd = ctx.dtypes
        dt = wc.dtype
        grad = grad.contiguous()
        gx = torch.empty((grad.size(0), wc.size(2)), dtype=xd, device=grad.device) if ctx.needs_input_grad[0] else None
        gw = torch.empty_like(wc)
        # bias gradients summed in fp32, each model's while its rows are in cache for its products
        gb = None if bd is None else torch.empty((len(ctx.seg), wc.size(1)), dtype=torch.float32, device=grad.device)
        a = 0
        for g, n in enumerate(ctx.seg):
            xg = xcs[g]
            if gb is not None:
                torch.sum(grad[a:a + n], 0, dtype=torch.float32, out=gb[g])
            gg = grad[a:a + n].to(dt)  # model by model, as the forward's casts (a no-op without one)
            # the input gradient in the compute dtype: straight into gx when the dtypes agree
            gxg = None if gx is None else (gx[a:a + n] if xd == dt else torch.empty((n, wc.size(2)), dtype=dt, device=grad.device))
            head, tail = _head_tail(n) if ctx.bucket else (n, 0)
            if head:
                if gxg is not None:
                    torch.mm(gg[:head], wc[g], out=gxg[:head])
                torch.mm(gg[:head].t(), xg[:head], out=gw[g])
            if tail and tail % BF16_TAIL_STEP == 0:  # already a tile's shape: in place
                if gxg is not None:
                    torch.mm(gg[head:], wc[g], out=gxg[head:])
                if head:
                    gw[g].addmm_(gg[head:].t(), xg[head:])
                else:
                    torch.mm(gg[head:].t(), xg[head:], out=gw[g])
            elif tail:
                gt, xt = _tile(gg[head:]), _tile(xg[head:])
                if gxg is not None:
                    gxg[head:] = torch.mm(gt, wc[g])[:tail]
                if head:
                    gw[g] += torch.mm(gt.t(), xt)
                else:
                    torch.mm(gt.t(), xt, out=gw[g])
            elif not head:
                gw[g].zero_()
            if gxg is not None:
                if ctx.relu_in:  # the producer's ReLU: zero where its output was 0, in place
                    torch.ops.aten.threshold_backward.grad_input(gxg, xg, 0, grad_input=gxg)
                if gxg.dtype != xd:
                    gx[a:a + n] = gxg
            a += n
        return gx, gw.to(wd), (None if gb is None else gb.to(bd)), None, None, None, None, None


class StackedGraphPred(nn.Module):
    """G ``GNNGraphPred`` models (same architecture) with parameters stacked on a leading model axis.

    Built from plain models (``StackedGraphPred(models)``): the stacked tensors start as copies of
    theirs. ``forward(fb: FusedBatch, models=None)`` returns logits ``[G, B, T]``; ``models`` (a
    ``slice``) scores a subset, e.g. evaluation in chunks of models.
    """

    def __init__(self, models: Sequence[nn.Module], amp: bool = False, exact: bool = True, kernels: str | None = None) -> None:
        super().__init__()
        if not models:
            raise ValueError("StackedGraphPred needs at least one model")
        first = models[0]
        reason = unsupported_reason(first)
        if reason is not None:
            raise ValueError(f"cannot stack this model: {reason}")
        gnn = first.gnn
        self.num_models = len(models)
        self.num_layer = gnn.num_layer
        self.emb_dim = gnn.emb_dim
        self.gnn_type = gnn.gnn_type
        self.JK = gnn.JK
        self.drop_ratio = float(gnn.drop_ratio)
        self.graph_pooling = first.graph_pooling
        self.num_tasks = first.num_tasks
        self.heads = getattr(gnn.gnns[0], "heads", 1) if self.gnn_type == "gat" else 1
        self.amp = bool(amp)
        #: ``exact=True`` (the CPU default): dense layers and BatchNorm call torch's own kernels model
        #: by model on each model's real rows, and GAT scores attention with the plain layer's
        #: formula, so gradients are bit-equal to separate runs. Why it matters: Adam turns gradient
        #: noise of parameters whose true gradient is ~0 (a bias before a BatchNorm) into full-size
        #: steps, so merely rounding-close gradients drift apart within a few dozen steps.
        #: ``exact=False`` (the GPU path): one batched matmul per layer, one masked BatchNorm over
        #: all models, attention split into node and edge-type parts — far fewer kernel launches.
        #: ``kernels="sparse"`` (the fast CPU path, :data:`KERNELS`): the unpadded layout and
        #: per-model BatchNorm of ``exact``, but GIN/GCN/GraphSAGE aggregation as one sparse-matrix
        #: product per layer (edge embeddings summed through per-node bond-type counts, no
        #: ``[E, d]`` gathered tensor), readout as a sparse product, dense layers through
        #: :class:`_PerModelLinear`, layer 0 on the embedding tables, and BatchNorm + ReLU + dropout
        #: as one node with masks from raw random bits (:func:`_keep_bits`).
        #: Sums are taken in another order, so one step equals ``exact`` to float rounding (tested),
        #: not bitwise; dropout masks have the same distribution, not the same draws.
        if kernels is None:
            kernels = "exact" if exact else "batched"
        if kernels not in KERNELS:
            raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {kernels!r}")
        self.kernels = kernels
        self.exact = kernels == "exact"
        #: per-model rows (unpadded layout): dense layers and BatchNorm model by model
        self._per_model = kernels in ("exact", "sparse")
        self._names: list[str] = []
        self._buffer_names: list[str] = []
        keys0 = list(first.state_dict().keys())
        for m in models[1:]:
            if list(m.state_dict().keys()) != keys0 or unsupported_reason(m) is not None:
                raise ValueError("all stacked models must have the same architecture")
        self.params = nn.ParameterDict()
        for name, _ in first.named_parameters():
            stacked = torch.stack([dict(m.named_parameters())[name].detach() for m in models]).clone()
            self.params[name.replace(".", "__")] = nn.Parameter(stacked)
            self._names.append(name)
        for name, _ in first.named_buffers():
            stacked = torch.stack([dict(m.named_buffers())[name].detach() for m in models]).clone()
            self.register_buffer("buf__" + name.replace(".", "__"), stacked)
            self._buffer_names.append(name)
        self.dropout_generators: list[torch.Generator] | None = None

    # ---------------------------------------------------------------------------------- access
    def p(self, name: str, models: slice) -> Tensor:
        """Parameter ``name`` of ``models``. All models: the parameter itself, not a slice of it
        (a slice's backward zero-fills and copies a gradient of the whole parameter, every step)."""
        t = self.params[name.replace(".", "__")]
        return t if models == slice(0, self.num_models) else t[models]

    def b(self, name: str) -> Tensor:
        return getattr(self, "buf__" + name.replace(".", "__"))

    def unstack(self, g: int) -> dict[str, Tensor]:
        """Model ``g``'s state dict (detached copies), loadable into a plain ``GNNGraphPred``."""
        out = {n: self.params[n.replace(".", "__")][g].detach().clone() for n in self._names}
        out.update({n: self.b(n)[g].clone() for n in self._buffer_names})
        return out

    def num_params_per_model(self) -> int:
        return sum(p[0].numel() for p in self.params.values())

    # ------------------------------------------------------------------------------ forward
    def forward(self, fb: FusedBatch, models: slice | None = None) -> Tensor:
        sl = models if models is not None else slice(0, self.num_models)
        G, d = fb.num_models, self.emb_dim
        dev = fb.x.device
        if self._per_model and fb.padded:
            raise ValueError(f"kernels={self.kernels!r} works on unpadded batches: collate with padded=False")
        if not self._per_model and not fb.padded and len(set(fb.counts.tolist())) > 1:
            raise ValueError("exact=False needs equal rows per model: collate with padded=True")
        # rows each model occupies in the flat node tensor (padded: Nmax each; else its node count)
        seg = [fb.nmax] * G if fb.padded else fb.counts.tolist()
        self._seg = self._rows = seg
        seg_t = torch.tensor(seg, device=dev)
        noff = seg_t.cumsum(0) - seg_t
        M = int(seg_t.sum())
        node_model = torch.arange(G, device=dev).repeat_interleave(seg_t)

        # input embeddings (x_embedding1 + x_embedding2), per-model tables flattened. The sparse
        # kernels never form them for layer 0 (see _input_operator); only JK modes that combine the
        # input embedding with the layers' outputs need them there
        w1 = self.p("gnn.x_embedding1.weight", sl).reshape(-1, d)
        w2 = self.p("gnn.x_embedding2.weight", sl).reshape(-1, d)
        tables = self.kernels == "sparse" and self.gnn_type != "gat"
        h = None
        if not tables or self.JK != "last":
            h = F.embedding(node_model * NUM_ATOM_TYPE + fb.x[:, 0], w1) + F.embedding(node_model * NUM_CHIRALITY_TAG + fb.x[:, 1], w2)
        ftype = w1.dtype

        # each model's self loops follow its real edges (as the plain convs append them), model by
        # model: every node sees its edges in a separate run's order, and each model's edges form
        # one contiguous block [start_g, end_g) (used by the exact GAT attention)
        E = fb.edge_index.size(1)
        ecount = torch.bincount(fb.edge_model, minlength=G)
        eoff = ecount.cumsum(0) - ecount
        real_pos = torch.arange(E, device=dev) + noff[fb.edge_model]
        loop_pos = (eoff + ecount)[node_model] + torch.arange(M, device=dev)
        row = torch.empty(E + M, dtype=torch.long, device=dev)
        col = torch.empty_like(row)
        bond = torch.full((E + M,), SELF_LOOP_BOND_TYPE, dtype=fb.edge_attr.dtype, device=dev)
        direction = torch.zeros(E + M, dtype=fb.edge_attr.dtype, device=dev)
        edge_model = torch.empty_like(row)
        loops = torch.arange(M, device=dev)
        row[real_pos], col[real_pos] = fb.edge_index[0], fb.edge_index[1]
        row[loop_pos], col[loop_pos] = loops, loops
        bond[real_pos], direction[real_pos] = fb.edge_attr[:, 0], fb.edge_attr[:, 1]
        edge_model[real_pos], edge_model[loop_pos] = fb.edge_model, node_model
        ends = (eoff + ecount + noff + seg_t).tolist()
        self._edge_bounds = list(zip([0] + ends[:-1], ends))
        bond_idx = edge_model * NUM_BOND_TYPE + bond
        dir_idx = edge_model * NUM_BOND_DIRECTION + direction
        # sparse kernels: the whole neighbourhood sum of a layer, messages and edge embeddings, is
        # one product S @ [h; bond table; direction table] with S fixed for the batch
        self._agg = self._agg0 = None
        #: the layers' BatchNorm + ReLU + dropout as one node (sparse kernels, training, CPU); it takes
        #: the bf16 products' output as it is
        self._bn_node = self.kernels == "sparse" and self.training and dev.type == "cpu"
        #: bf16 row layout (sparse kernels on CPU, GIN/GCN/GraphSAGE, JK "last"): model g's nodes
        #: followed by pad rows up to bf16_rows(n_g), so every bf16 product is one in-place call on a
        #: cached shape (measured 1.06x per GIN MLP against head blocks + copied tail tiles). Pad rows
        #: are in no operator's rows or columns: the aggregation gives them 0, BatchNorm skips them
        #: (its output and input gradient there are 0), pooling never reads them.
        pos, Mp = None, M
        if tables and self.amp and dev.type == "cpu" and self.JK == "last" and not fb.padded:
            stride = [bf16_rows(n) for n in seg]
            stride_t = torch.tensor(stride, device=dev)
            pos = torch.arange(M, device=dev) + (stride_t.cumsum(0) - stride_t - noff)[node_model]
            Mp = int(stride_t.sum())
            self._seg = stride
        if tables:
            r_, c_ = (row, col) if pos is None else (pos[row], pos[col])
            self._agg = self._aggregation_operator(r_, c_, bond_idx, dir_idx, G, Mp, ftype)
            self._agg0 = self._input_operator(row, col, bond, direction, edge_model, node_model, fb.x, G, M, ftype, pos, Mp)
        #: sparse kernels, GAT: each model's edges in its own numbering (attention model by model, below)
        self._gat_blocks = None
        if self.kernels == "sparse" and self.gnn_type == "gat":
            self._gat_blocks = [(row[a:b] - n0, col[a:b] - n0, bond[a:b], direction[a:b])
                                for (a, b), n0 in zip(self._edge_bounds, noff.tolist())]

        mask = None
        if self.training and fb.padded:
            ar = torch.arange(fb.nmax, device=dev).view(1, -1)
            mask = (ar < fb.counts.view(G, 1)).to(ftype).unsqueeze(-1)
        self._deg_norm = None

        h_list = [h]
        for layer in range(self.num_layer):
            pre = f"gnn.gnns.{layer}."
            e1 = self.p(pre + "edge_embedding1.weight", sl)
            e2 = self.p(pre + "edge_embedding2.weight", sl)
            D = e1.size(-1)
            eemb = None
            if self._agg is None and self._gat_blocks is None:
                eemb = F.embedding(bond_idx, e1.reshape(-1, D)) + F.embedding(dir_idx, e2.reshape(-1, D))
            if layer == 0 and self._agg0 is not None:
                h = self._conv0(pre, sl, G, w1, w2, e1, e2)
            else:
                h = self._conv(pre, sl, h, row, col, eemb, G, M, e1, e2, bond_idx, dir_idx)
            if self._bn_node:
                h = self._bn_relu_dropout(layer, sl, h)
            else:
                h = self._batch_norm(layer, sl, h, fb, mask)
                if layer < self.num_layer - 1:
                    # in place on the sparse kernels' path (BatchNorm's backward needs its input, not
                    # its output): one [M, d] tensor and one pass over memory fewer, same values
                    h = F.relu_(h) if tables else F.relu(h)
                if self.training and self.drop_ratio > 0:
                    h = self._dropout(h, sl)
            h_list.append(h)

        if self.JK == "last":
            rep = h_list[-1]
        elif self.JK == "concat":
            rep = torch.cat(h_list, dim=1)
        elif self.JK == "max":
            rep = torch.stack(h_list, dim=0).max(dim=0).values
        else:
            rep = torch.stack(h_list, dim=0).sum(dim=0)

        B = fb.num_graphs
        reduce = {"mean": "mean", "sum": "sum", "max": "max"}[self.graph_pooling]
        if self.kernels == "sparse" and reduce != "max":
            pooled = _sparse_product(rep, *self._pooling_operator(fb, G * B, M, reduce, rep.dtype, pos, Mp))
        else:
            pooled = scatter(rep, fb.graph_index, dim=0, dim_size=G * B + 1, reduce=reduce)[: G * B]
        self._seg = self._rows = [B] * G
        return self._dense(pooled, "graph_pred_linear", sl).view(G, B, -1)

    # ----------------------------------------------------------------------- sparse operators
    def _aggregation_operator(self, row: Tensor, col: Tensor, bond_idx: Tensor, dir_idx: Tensor, G: int, M: int,
                              dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``S [M, M + G*6 + G*3]`` with ``S @ [h; bond tables; direction tables]`` = the layer's
        neighbourhood reduction (incoming edges and self loops of every node, each edge adding its
        source row and its two edge-embedding rows), and its transpose for the backward.

        Edge weights: 1 (GIN sum), the symmetric degree norm (GCN), ``1/deg`` (GraphSAGE mean)."""
        ones = torch.ones(row.numel(), dtype=dtype, device=row.device)
        if self.gnn_type == "gin":
            w = ones
        else:
            deg = torch.zeros(M, dtype=dtype, device=row.device).index_add_(0, row, ones)
            if self.gnn_type == "gcn":
                dis = deg.pow(-0.5)
                dis[torch.isinf(dis)] = 0.0
                w = dis[row] * dis[col]
            else:
                w = 1.0 / deg[row]
        nb = G * NUM_BOND_TYPE
        rows = torch.cat([row, row, row])
        cols = torch.cat([col, M + bond_idx, M + nb + dir_idx])
        return _operator_pair(rows, cols, torch.cat([w, w, w]), (M, M + nb + G * NUM_BOND_DIRECTION))

    def _table_rows(self) -> int:
        """Rows of one model's layer-0 table: atom types, chirality tags and (GIN) bond types and
        directions; :meth:`_input_operator` adds one bias row."""
        n = NUM_ATOM_TYPE + NUM_CHIRALITY_TAG
        return n + (NUM_BOND_TYPE + NUM_BOND_DIRECTION if self.gnn_type == "gin" else 0)

    def _input_operator(self, row: Tensor, col: Tensor, bond: Tensor, direction: Tensor, edge_model: Tensor,
                        node_model: Tensor, x: Tensor, G: int, M: int, dtype: torch.dtype, pos: Tensor | None = None,
                        out_rows: int | None = None) -> tuple[Tensor, Tensor]:
        """``A0 [M, G*R]`` such that layer 0's first dense output is ``A0 @ [T_g; b_g]`` per model, with
        ``T_g`` = model g's embedding tables times its first weight matrix (R = table rows + 1 bias row).

        Why: layer 0's input is a sum of embedding rows, so its first product can be taken on the
        (few) table rows instead of on every node: ``(S @ (X1 E1 + X2 E2) + S_b e1 + S_d e2) W^T =
        A0 @ ([E1; E2; e1; e2] W^T)`` for GIN (``A0`` counts, per node, the atom and chirality types of
        its neighbours and self loop and the bond types and directions of those edges), and
        ``(X1 E1 + X2 E2) W^T = X0 @ ([E1; E2] W^T)`` for GCN/GraphSAGE. For GIN 5 x 300 at batch 32
        (~770 nodes per model) that removes ~10% of a training step's matrix-multiply FLOPs: the
        forward product, its weight gradient and its input gradient on ~770 rows become the same on
        132 rows. Equal to the node-wise product to float rounding (sums in another order)."""
        R = self._table_rows() + 1
        dev = row.device
        ones_e = torch.ones(row.numel(), dtype=dtype, device=dev)
        ones_n = torch.ones(M, dtype=dtype, device=dev)
        nodes = torch.arange(M, device=dev)
        bias_col = node_model * R + (R - 1)
        if self.gnn_type == "gin":
            base = edge_model * R
            a, c = x[col, 0], x[col, 1]
            cols = torch.cat([base + a, base + NUM_ATOM_TYPE + c, base + NUM_ATOM_TYPE + NUM_CHIRALITY_TAG + bond,
                              base + NUM_ATOM_TYPE + NUM_CHIRALITY_TAG + NUM_BOND_TYPE + direction, bias_col])
            rows = torch.cat([row, row, row, row, nodes])
            vals = torch.cat([ones_e, ones_e, ones_e, ones_e, ones_n])
        else:
            base = node_model * R
            cols = torch.cat([base + x[:, 0], base + NUM_ATOM_TYPE + x[:, 1], bias_col])
            rows = torch.cat([nodes, nodes, nodes])
            vals = torch.cat([ones_n, ones_n, ones_n])
        if pos is not None:  # the bf16 row layout: node i's row is pos[i] of out_rows
            rows = pos[rows]
        return _operator_pair(rows, cols, vals, (M if out_rows is None else out_rows, G * R))

    def _conv0(self, pre: str, sl: slice, G: int, w1: Tensor, w2: Tensor, e1: Tensor, e2: Tensor) -> Tensor:
        """Layer 0 of the sparse kernels through :meth:`_input_operator` (GIN: the whole layer;
        GCN/GraphSAGE: its linear, then the usual aggregation)."""
        d = self.emb_dim
        parts = [w1.view(G, -1, d), w2.view(G, -1, d)]
        name = pre + ("mlp.0" if self.gnn_type == "gin" else "linear")
        if self.gnn_type == "gin":
            parts += [e1, e2]
        tab = torch.cat(parts, dim=1).reshape(-1, d)
        T = self._table_rows()
        w, b = self.p(name + ".weight", sl), self.p(name + ".bias", sl)
        dt = torch.bfloat16 if self.amp else w.dtype
        tw = _PerModelLinear.apply(tab, w, None, [T] * G, dt, w.dtype)  # [G*T, out]
        twb = torch.cat([tw.view(G, T, -1), b.unsqueeze(1)], dim=1).reshape(G * (T + 1), -1)
        if self.gnn_type == "gin":
            z = _sparse_product(twb, *self._agg0, relu_out=True)
            return self._dense(z, pre + "mlp.2", sl, keep_bf16=self._bn_node, relu_in=True)
        z = _sparse_product(twb, *self._agg0)
        out = _sparse_product(torch.cat([z, e1.reshape(-1, d), e2.reshape(-1, d)]), *self._agg)
        return F.normalize(out, p=2, dim=-1) if self.gnn_type == "graphsage" else out

    @staticmethod
    def _pooling_operator(fb: FusedBatch, num_graphs: int, M: int, reduce: str, dtype: torch.dtype,
                          pos: Tensor | None = None, in_rows: int | None = None) -> tuple[Tensor, Tensor]:
        """``P [G*B, M]``: graph readout (sum or mean over each graph's nodes) as a product."""
        gi = fb.graph_index
        keep = gi < num_graphs  # pads belong to no graph
        rows, cols = gi[keep], (torch.arange(M, device=gi.device) if pos is None else pos)[keep]
        w = torch.ones(rows.numel(), dtype=dtype, device=gi.device)
        if reduce == "mean":
            n = torch.zeros(num_graphs, dtype=dtype, device=gi.device).index_add_(0, rows, w)
            w = 1.0 / n.clamp(min=1)[rows]
        return _operator_pair(rows, cols, w, (num_graphs, M if in_rows is None else in_rows))

    # -------------------------------------------------------------------------------- layers
    def _dense(self, x: Tensor, name: str, sl: slice, keep_bf16: bool = False, relu_out: bool = False,
               relu_in: bool = False) -> Tensor:
        """Per-model ``Linear`` on the flat ``[M, in]`` rows (model g owns ``self._seg[g]`` rows).

        With ``amp`` the product runs in bfloat16 and is returned in fp32, or in bfloat16 with
        ``keep_bf16`` (the next layer casts anyway: one round trip fewer, same values). ``relu_out`` /
        ``relu_in`` (sparse kernels only): a ReLU between two of these, see :class:`_PerModelLinear`."""
        w, b = self.p(name + ".weight", sl), self.p(name + ".bias", sl)
        if self.kernels == "sparse":
            dt = torch.bfloat16 if self.amp else x.dtype
            return _PerModelLinear.apply(x, w, b, list(self._seg), dt, dt if keep_bf16 else w.dtype, relu_out, relu_in)
        if self._per_model:
            # torch's own kernel model by model on its rows: a separate run's call, shapes and
            # rounding. split/unbind (not x[g]) keep autograd O(G): their backward is one cat/stack
            if self.amp:
                dt = torch.bfloat16
                xs, ws, bs = x.to(dt).split(self._seg), w.to(dt).unbind(0), b.to(dt).unbind(0)
                out = torch.cat([F.linear(xg, wg, bg) for xg, wg, bg in zip(xs, ws, bs)])
                return out if keep_bf16 else out.float()
            xs, ws, bs = x.split(self._seg), w.unbind(0), b.unbind(0)
            return torch.cat([F.linear(xg, wg, bg) for xg, wg, bg in zip(xs, ws, bs)])
        G = w.size(0)
        return _linear(x.view(G, -1, x.size(-1)), w, b, self.amp).reshape(x.size(0), -1)

    def _conv(self, pre, sl, h, row, col, eemb, G, M, e1, e2, bond_idx, dir_idx) -> Tensor:
        d = self.emb_dim
        t = self.gnn_type
        if t == "gin":
            if self._agg is not None:
                aggr = _sparse_product(torch.cat([h, e1.reshape(-1, d), e2.reshape(-1, d)]), *self._agg)
            else:
                aggr = scatter(h.index_select(0, col) + eemb, row, dim=0, dim_size=M, reduce="sum")
            if self.kernels == "sparse":  # the MLP's ReLU inside the two products (no tensor of its own)
                z = self._dense(aggr, pre + "mlp.0", sl, keep_bf16=True, relu_out=True)
                return self._dense(z, pre + "mlp.2", sl, keep_bf16=self._bn_node, relu_in=True)
            return self._dense(F.relu(self._dense(aggr, pre + "mlp.0", sl, keep_bf16=True)), pre + "mlp.2", sl)
        if self._agg is not None:  # gcn / graphsage: the operator carries the normalisation
            xl = self._dense(h, pre + "linear", sl)
            out = _sparse_product(torch.cat([xl, e1.reshape(-1, d), e2.reshape(-1, d)]), *self._agg)
            return F.normalize(out, p=2, dim=-1) if t == "graphsage" else out
        if t == "gcn":
            if self._deg_norm is None:
                deg = scatter(torch.ones_like(row, dtype=h.dtype), row, dim=0, dim_size=M, reduce="sum")
                dis = deg.pow(-0.5)
                dis[torch.isinf(dis)] = 0.0
                self._deg_norm = dis[row] * dis[col]
            xl = self._dense(h, pre + "linear", sl)
            return scatter(self._deg_norm.view(-1, 1) * (xl.index_select(0, col) + eemb), row, dim=0, dim_size=M, reduce="sum")
        if t == "graphsage":
            xl = self._dense(h, pre + "linear", sl)
            out = scatter(xl.index_select(0, col) + eemb, row, dim=0, dim_size=M, reduce="mean")
            return F.normalize(out, p=2, dim=-1)
        H = self.heads
        xl = self._dense(h, pre + "weight_linear", sl).view(M, H, d)
        bias = self.p(pre + "bias", sl)  # [G, d]
        if self._gat_blocks is not None:
            # sparse kernels: attention model by model on its own edge block. The [edges, heads, d]
            # tensors of one model stay cache-sized (all G models' at once are G times larger and run from
            # memory: fused GAT measured 0.67x separate runs that way). Score split into its node part and
            # the part on the message; equal to the plain formula to rounding
            att = self.p(pre + "att", sl).view(G, H, 2 * d)
            outs = []
            for xg, ag, e1g, e2g, bg, (r, c, bt, dr) in zip(xl.split(self._seg), att.unbind(0), e1.unbind(0),
                                                          e2.unbind(0), bias.unbind(0), self._gat_blocks):
                n = xg.size(0)
                x_j = xg.index_select(0, c) + (e1g.index_select(0, bt) + e2g.index_select(0, dr)).view(-1, H, d)
                alpha = (xg * ag[:, :d]).sum(-1).index_select(0, r) + (x_j * ag[:, d:]).sum(-1)
                alpha = softmax(F.leaky_relu(alpha, 0.2), r, None, n)
                outs.append(scatter(x_j * alpha.unsqueeze(-1), r, dim=0, dim_size=n, reduce="sum").mean(dim=1) + bg)
            return torch.cat(outs)
        x_j = xl.index_select(0, col) + eemb.view(-1, H, d)
        if self.exact:
            # the plain layer's formula: model g's attention vector broadcast over its edge block.
            # split (not cat[a:b]): its backward is one cat, where G slices would each fill a zero
            # [E, heads, 2d] gradient (O(G^2) memory traffic: 36% of a step for G = 10)
            cat = torch.cat([xl.index_select(0, row), x_j], dim=-1)
            att_g = self.p(pre + "att", sl).unbind(0)  # [1, H, 2d] each
            blocks = cat.split([b - a for a, b in self._edge_bounds])
            alpha = torch.cat([(blk * ag).sum(dim=-1) for blk, ag in zip(blocks, att_g)])
            alpha = softmax(F.leaky_relu(alpha, 0.2), row, None, M)
            out = scatter(x_j * alpha.unsqueeze(-1), row, dim=0, dim_size=M, reduce="sum").mean(dim=1)
            return torch.cat([o + bg for o, bg in zip(out.split(self._seg), bias.unbind(0))])
        # alpha = <[(Wx)_i, (Wx)_j + e_ij], att> split into its node part (once per node) and its
        # edge-embedding part (per model and bond/direction type): no [E, heads, 2d] gathered tensor
        att = self.p(pre + "att", sl).view(G, H, 2 * d)
        att_i, att_j = att[..., :d], att[..., d:]
        xg = xl.view(G, -1, H, d)
        s_i = (xg * att_i.unsqueeze(1)).sum(-1).reshape(M, H)
        s_j = (xg * att_j.unsqueeze(1)).sum(-1).reshape(M, H)
        t1 = (e1.view(G, -1, H, d) * att_j.unsqueeze(1)).sum(-1).reshape(-1, H)  # [G*6, H]
        t2 = (e2.view(G, -1, H, d) * att_j.unsqueeze(1)).sum(-1).reshape(-1, H)  # [G*3, H]
        alpha = s_i[row] + s_j[col] + t1[bond_idx] + t2[dir_idx]
        alpha = softmax(F.leaky_relu(alpha, 0.2), row, None, M)
        out = scatter(x_j * alpha.unsqueeze(-1), row, dim=0, dim_size=M, reduce="sum").mean(dim=1)
        return (out.view(G, -1, d) + bias.unsqueeze(1)).reshape(M, d)

    def _batch_norm(self, layer: int, sl: slice, h: Tensor, fb: FusedBatch, mask: Tensor | None) -> Tensor:
        pre = f"gnn.batch_norms.{layer}."
        weight, bias = self.p(pre + "weight", sl), self.p(pre + "bias", sl)
        rm, rv = self.b(pre + "running_mean")[sl], self.b(pre + "running_var")[sl]
        tracked = self.b(pre + "num_batches_tracked")[sl]
        if self.training:
            tracked.add_(1)
        if self._per_model:
            # torch's own kernel on each model's rows: the very computation (and rounding) of a
            # separate run. Adam turns gradient noise of parameters whose true gradient is ~0 (the
            # bias before a BatchNorm) into full-size steps, so anything short of bit-equal
            # gradients drifts apart within a few dozen steps.
            outs = [F.batch_norm(hg, rm[g], rv[g], wg, bg, self.training, _BN_MOMENTUM, _BN_EPS)
                    for g, (hg, wg, bg) in enumerate(zip(h.split(self._seg), weight.unbind(0), bias.unbind(0)))]
            return outs[0] if len(outs) == 1 else torch.cat(outs)  # one model (CPU evaluation): no copy
        G = weight.size(0)
        x = h.view(G, -1, h.size(-1))
        weight, bias = weight.unsqueeze(1), bias.unsqueeze(1)
        if not self.training:
            return ((x - rm.unsqueeze(1)) * torch.rsqrt(rv.unsqueeze(1) + _BN_EPS) * weight + bias).reshape(h.shape)
        n = fb.counts.to(h.dtype).view(-1, 1, 1)
        if mask is None:
            mean = x.mean(dim=1, keepdim=True)
            diff = x - mean
            var = (diff * diff).mean(dim=1, keepdim=True)
        else:
            mean = (x * mask).sum(dim=1, keepdim=True) / n
            diff = x - mean
            dm = diff * mask
            var = (dm * dm).sum(dim=1, keepdim=True) / n
        with torch.no_grad():
            unbiased = var * n / (n - 1).clamp(min=1)
            rm.mul_(1 - _BN_MOMENTUM).add_(_BN_MOMENTUM * mean.squeeze(1))
            rv.mul_(1 - _BN_MOMENTUM).add_(_BN_MOMENTUM * unbiased.squeeze(1))
        return (diff * torch.rsqrt(var + _BN_EPS) * weight + bias).reshape(h.shape)

    def _bn_relu_dropout(self, layer: int, sl: slice, h: Tensor) -> Tensor:
        """Sparse kernels, training on CPU: BatchNorm, ReLU (not after the last layer) and dropout of
        one layer as :class:`_BatchNormReluDropout`; masks from each model's own generator."""
        pre = f"gnn.batch_norms.{layer}."
        weight, bias = self.p(pre + "weight", sl), self.p(pre + "bias", sl)
        rm, rv = self.b(pre + "running_mean")[sl], self.b(pre + "running_var")[sl]
        self.b(pre + "num_batches_tracked")[sl].add_(1)
        p = self.drop_ratio
        masks, scale = None, 1.0
        if p > 0:
            gens = self.dropout_generators[sl] if self.dropout_generators is not None else [None] * len(self._seg)
            masks = torch.empty_like(h)
            a = 0
            for n, rows, gen in zip(self._rows, self._seg, gens):  # real rows only: a run's draws
                if _keep_bits(n, h.size(1), 1 - p, gen, out=masks[a:a + n]) is None:
                    masks = None  # keep probability 1 to the resolution of the bits: no dropout
                    break
                a += rows
            if masks is not None:
                scale = 1.0 / (1 - p)
        return _BatchNormReluDropout.apply(h, weight, bias, rm, rv, list(self._rows), list(self._seg), layer < self.num_layer - 1, masks,
                                           scale, _BN_MOMENTUM, _BN_EPS)

    def _dropout(self, h: Tensor, sl: slice) -> Tensor:
        p = self.drop_ratio
        gens = self.dropout_generators
        if gens is not None and h.device.type == "cpu" and self.kernels == "sparse":
            # each model's own generator; F.dropout's distribution (keep with probability 1-p,
            # scale 1/(1-p)) from 16 raw random bits per element: 3.6x cheaper than bernoulli_
            noise = torch.cat([_keep_mask(n, h.size(1), 1 - p, gen, h.dtype) for n, gen in zip(self._seg, gens[sl])])
            return h * noise.mul_(1.0 / (1 - p))
        if gens is not None and h.device.type == "cpu" and self.exact:
            # exactly F.dropout's CPU path (noise.bernoulli_(1-p).div_(1-p); input * noise), drawn from
            # model g's own generator on the shape a separate run sees: bit-identical masks
            noise = torch.cat([
                torch.empty(n, h.size(1), dtype=h.dtype).bernoulli_(1 - p, generator=gen).div_(1 - p)
                for n, gen in zip(self._seg, gens[sl])
            ])
            return h * noise
        return h * torch.empty_like(h).bernoulli_(1 - p).div_(1 - p)
