"""The fast CPU kernels of fused sweeps (``kernels="sparse"``) and the pieces they are made of.

They take sums in another order than separate runs (sparse-matrix aggregation, fused Adam) and draw
dropout masks another way, so they are checked against the exact kernels step by step (same state,
same batch: same losses, gradients, running statistics and evaluation logits to float rounding),
piece by piece in float64 (``gradcheck``), and for what must stay bitwise: a model's training does
not depend on the group it is in or its position there. Real data (BACE), small models.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from gnnpretrain.nn.stacked import FusedBatch, StackedGraphPred, _keep_mask, _PerModelLinear, _sparse_product, _operator_pair
from gnnpretrain.train.run import FinetuneConfig, build_model, eval_batches
from gnnpretrain.train.fused import TrainStore, index_loader, make_optimizer, per_model_loss, resolve_kernels, run_members
from gnnpretrain.train.tasks import get_task
from gnnpretrain.utils import seed_everything

SMALL = dict(dataset="bace", num_layer=2, emb_dim=32, batch_size=32, progress=False)


@pytest.fixture(scope="module")
def bace(data_dir, cache):
    return get_task("chem", "bace", data_root=data_dir, cache=cache, split="scaffold")


@pytest.fixture(scope="module")
def store(bace):
    return TrainStore(bace.graphs("train"))


def _models(task, cfg, seeds):
    out = []
    for s in seeds:
        seed_everything(s)
        out.append(build_model(task, cfg))
    return out


def _batch(store, seeds):
    return store.collate(torch.stack([next(iter(index_loader(len(store), 32, torch.Generator().manual_seed(s)))) for s in seeds]))


@pytest.mark.parametrize("gnn_type,pooling,jk", [("gin", "mean", "last"), ("gin", "sum", "concat"), ("gin", "max", "last"),
                                                 ("gcn", "mean", "sum"), ("graphsage", "sum", "max"), ("gat", "mean", "last")])
def test_one_step_equals_exact_kernels(bace, store, gnn_type, pooling, jk):
    """Same models, same batch: the sparse kernels' losses equal the exact (bit-equal-to-separate)
    kernels' to float rounding, their gradients are as close to the step's float64 gradients as the
    exact kernels' are (to a small factor), and BatchNorm statistics and evaluation logits equal the
    exact kernels' (every architecture, pooling and jumping-knowledge mode the sparse kernels touch).

    Why gradients against float64 and not sparse vs exact directly: both err by rounding — up to
    1.1e-5 of the largest gradient each here (GIN, sum pooling: large activations) — so their
    difference reaches 1.5e-5 of it from rounding alone; measured against float64 the sparse error
    was at most 2.8x the exact one (or of 1e-6 of the largest gradient, the floor for a bias before a
    BatchNorm, whose true gradient is 0 and which both kernels give rounding noise only)."""
    cfg = FinetuneConfig(gnn_type=gnn_type, graph_pooling=pooling, JK=jk, dropout=0.0, **SMALL)
    models = _models(bace, cfg, (0, 1, 2))
    exact, sparse = StackedGraphPred(models, kernels="exact"), StackedGraphPred(models, kernels="sparse")
    f64 = StackedGraphPred([copy.deepcopy(m).double() for m in models], kernels="exact")
    fb = _batch(store, (0, 1, 2))
    fb64 = dataclasses.replace(fb, y=fb.y.double())
    la, lb, lt = per_model_loss(exact(fb), fb.y), per_model_loss(sparse(fb), fb.y), per_model_loss(f64(fb64), fb64.y)
    torch.testing.assert_close(lb, la, rtol=1e-5, atol=0)  # the bound; measured 8e-8 to 2e-6
    la.sum().backward()
    lb.sum().backward()
    lt.sum().backward()
    scale = max(p.grad.abs().max() for p in f64.parameters())
    for (name, pa), (_, pb), (_, pt) in zip(exact.named_parameters(), sparse.named_parameters(), f64.named_parameters()):
        err_exact = (pa.grad.double() - pt.grad).abs().max()
        err_sparse = (pb.grad.double() - pt.grad).abs().max()
        assert err_sparse <= 4 * max(err_exact, 1e-6 * scale), (name, float(err_sparse), float(err_exact))
    for name, buf in exact.named_buffers():
        torch.testing.assert_close(getattr(sparse, name), buf, rtol=1e-5, atol=1e-6)
    exact.eval(), sparse.eval()
    batch = eval_batches(bace, "valid", 256)[0]
    torch.testing.assert_close(sparse(FusedBatch.replicate(batch, 3)), exact(FusedBatch.replicate(batch, 3)),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gnn_type", ["gin", "gcn", "graphsage"])
def test_bf16_step_stays_close_to_exact_bf16(bace, store, gnn_type):
    """bf16 products on each model's padded rows: the loss is the exact path's bf16 loss to bf16
    rounding, and pad rows never leak into real rows' gradients (every architecture the padded
    layout serves)."""
    cfg = FinetuneConfig(dropout=0.0, gnn_type=gnn_type, **SMALL)
    models = _models(bace, cfg, (0, 1))
    exact, sparse = StackedGraphPred(models, kernels="exact", amp=True), StackedGraphPred(models, kernels="sparse", amp=True)
    fb = _batch(store, (0, 1))
    la, lb = per_model_loss(exact(fb), fb.y), per_model_loss(sparse(fb), fb.y)
    torch.testing.assert_close(lb, la, rtol=1e-2, atol=0)
    fp32 = StackedGraphPred(models, kernels="exact")
    lt = per_model_loss(fp32(fb), fb.y)
    assert not torch.equal(lb, per_model_loss(StackedGraphPred(models, kernels="sparse")(fb), fb.y))  # bf16 ran
    # gradients (bf16 inputs of the BatchNorm node, per-model casts, in fp32 parameters): bf16 rounding
    # of the fp32 step's, no larger than the exact bf16 kernels' (measured 0.11 vs 0.15 of the largest
    # gradient at this width, 32)
    for loss in (la, lb, lt):
        loss.sum().backward()
    scale = max(p.grad.abs().max() for p in fp32.parameters())
    err_exact = max((a.grad - t.grad).abs().max() for a, t in zip(exact.parameters(), fp32.parameters()))
    err_sparse = max((b.grad - t.grad).abs().max() for b, t in zip(sparse.parameters(), fp32.parameters()))
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in sparse.parameters())
    assert err_sparse <= max(1.5 * err_exact, 0.02 * scale), (float(err_sparse), float(err_exact), float(scale))
    # evaluation in the padded bf16 rows: the exact bf16 kernels' logits to bf16 rounding
    exact.eval(), sparse.eval()
    batch = eval_batches(bace, "valid", 256)[0]
    torch.testing.assert_close(sparse(FusedBatch.replicate(batch, 2)), exact(FusedBatch.replicate(batch, 2)), rtol=2e-2, atol=2e-2)


def test_per_model_linear_and_sparse_product_gradients():
    """Both custom autograd functions against finite differences (float64, so no bf16 padding)."""
    torch.manual_seed(0)
    seg = [5, 3, 4]
    x = torch.randn(sum(seg), 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 7, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: _PerModelLinear.apply(x, w, b, seg, torch.float64, torch.float64), (x, w, b))
    rows, cols = torch.tensor([0, 0, 1, 2, 2, 2, 3]), torch.tensor([1, 4, 0, 2, 2, 3, 4])
    S, St = _operator_pair(rows, cols, torch.rand(7, dtype=torch.float64), (4, 5))
    h = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h: _sparse_product(h, S, St), (h,))
    # duplicates are summed (a repeated edge counts twice, as scatter-add counts it)
    assert S.to_dense()[2, 2] == S.values()[S.crow_indices()[2]:S.crow_indices()[3]][0]


def test_operator_pair_is_the_summed_matrix_and_its_transpose():
    """The operators built from one sort: duplicates summed (a bond type met by several edges of one node),
    empty rows and columns kept, the transpose exact; no transpose when no gradient is recorded."""
    gen = torch.Generator().manual_seed(3)
    n_rows, n_cols = 40, 55
    rows = torch.randint(0, n_rows - 3, (300,), generator=gen)  # the last rows stay empty
    cols = torch.randint(0, n_cols - 5, (300,), generator=gen)  # so do the last columns
    vals = torch.rand(300, dtype=torch.float64, generator=gen)
    dense = torch.zeros(n_rows, n_cols, dtype=torch.float64).index_put_((rows, cols), vals, accumulate=True)
    S, St = _operator_pair(rows, cols, vals, (n_rows, n_cols))
    assert S.layout == St.layout == torch.sparse_csr and S.shape == (n_rows, n_cols) and St.shape == (n_cols, n_rows)
    torch.testing.assert_close(S.to_dense(), dense, rtol=0, atol=1e-12)
    torch.testing.assert_close(St.to_dense(), dense.t(), rtol=0, atol=1e-12)
    assert S.col_indices().numel() == int((dense != 0).sum())  # one stored entry per position
    x = torch.randn(n_cols, 4, dtype=torch.float64, generator=gen)
    torch.testing.assert_close(_sparse_product(x, S, St), dense @ x)
    with torch.no_grad():
        S0, St0 = _operator_pair(rows, cols, vals, (n_rows, n_cols))
    assert St0 is None and torch.equal(S0.to_dense(), S.to_dense())


def _assert_bf16_linear_equals_per_model(seg: list) -> None:
    """``_PerModelLinear`` in bf16 on rows ``seg`` against each model's own bf16 ``F.linear``, both ways."""
    x = torch.randn(sum(seg), 16, requires_grad=True)
    w, b = torch.randn(len(seg), 8, 16, requires_grad=True), torch.randn(len(seg), 8, requires_grad=True)
    out = _PerModelLinear.apply(x, w, b, seg, torch.bfloat16, torch.float32)
    xr, wr, br = (t.detach().clone().requires_grad_() for t in (x, w, b))
    ref = torch.cat([torch.nn.functional.linear(xg.bfloat16(), wg.bfloat16(), bg.bfloat16()).float()
                     for xg, wg, bg in zip(xr.split(seg), wr, br)])
    torch.testing.assert_close(out, ref, rtol=1e-2, atol=1e-2)
    g = torch.randn_like(out)
    out.backward(g)
    ref.backward(g)
    for got, want in ((x.grad, xr.grad), (w.grad, wr.grad), (b.grad, br.grad)):
        torch.testing.assert_close(got, want, rtol=2e-2, atol=5e-2)


def test_bf16_blocks_equal_unpadded_products():
    """Rows padded to the block height (a 64-row head, a tail tile of 16/32/48/64 rows) compute what
    the unpadded per-model bf16 linear does, forward and backward: no padding row leaks in."""
    torch.manual_seed(0)
    seg = [70, 3, 129, 104, 127]  # tails 6, 3, 1, 40 (a 48-row tile), 63 (a 64-row tile)
    _assert_bf16_linear_equals_per_model(seg)


def test_bf16_rows_and_aligned_products():
    """The padded bf16 layout: rows round up to 16 (up to 1,024 nodes) or 64, never down, and a model
    whose rows are aligned runs as one product that equals the per-model bf16 linear, both ways."""
    from gnnpretrain.nn.stacked import bf16_rows

    for n in (1, 15, 16, 17, 700, 1024, 1025, 3000):
        r = bf16_rows(n)
        assert r >= n and r - n < (16 if n <= 1024 else 64) and r % (16 if n <= 1024 else 64) == 0
        assert bf16_rows(r) == r
    torch.manual_seed(0)
    seg = [bf16_rows(n) for n in (50, 700, 1030)]  # 64, 704, 1088
    _assert_bf16_linear_equals_per_model(seg)


def test_keep_mask_distribution_and_determinism():
    gen = torch.Generator().manual_seed(0)
    for keep in (0.5, 0.9, 0.1):
        m = _keep_mask(400, 300, keep, gen, torch.float32)
        assert set(m.unique().tolist()) <= {0.0, 1.0}
        assert abs(m.mean().item() - keep) < 0.005
    assert _keep_mask(3, 4, 1.0, gen, torch.float32).eq(1).all()
    a = _keep_mask(50, 30, 0.5, torch.Generator().manual_seed(7), torch.float32)
    assert torch.equal(a, _keep_mask(50, 30, 0.5, torch.Generator().manual_seed(7), torch.float32))


@pytest.mark.parametrize("kernels,amp", [("sparse", False), ("exact", False), ("sparse", True)])
def test_training_does_not_depend_on_group_or_position(bace, store, kernels, amp):
    """A full epoch (its last batch partial) with the paper's dropout: seed 2 trained at position 2 of
    a group of 4 and at position 1 of a group of 2 ends bit-equal. (The per-model loss makes the
    partial batch position-independent; see ``_per_model_loss``.) In bf16 too, where each model's
    rows are padded (the bf16 row layout): a model's pads depend on its own node count only."""
    cfg = FinetuneConfig(dropout=0.5, **SMALL)

    def train(seeds):
        models, states = [], []
        for s in seeds:
            seed_everything(s)
            models.append(build_model(bace, cfg))
            states.append(torch.get_rng_state())
        st = StackedGraphPred(models, kernels=kernels, amp=amp)
        st.dropout_generators = [torch.Generator() for _ in seeds]
        for gen, state in zip(st.dropout_generators, states):
            gen.set_state(state)
        opt = make_optimizer(st, cfg, kernels)
        its = [iter(index_loader(len(store), 32, torch.Generator().manual_seed(s))) for s in seeds]
        st.train()
        for _ in range(len(index_loader(len(store), 32, torch.Generator()))):
            fb = store.collate(torch.stack([next(i) for i in its]))
            losses = per_model_loss(st(fb), fb.y)
            opt.zero_grad()
            losses.sum().backward()
            opt.step()
        return st

    four, two = train([0, 1, 2, 3]), train([0, 2])
    for a, b in ((0, 0), (2, 1)):
        ua, ub = four.unstack(a), two.unstack(b)
        assert all(torch.equal(ua[n], ub[n]) for n in ua)


def test_parallel_groups_equal_one_process(bace, tmp_path):
    """run_members(jobs=2): the groups trained in two worker processes give the records of one process."""
    base = dict(seeds="0-3", epochs=1, dropout=0.5, fused=True, fuse_max=2, num_threads=1, **SMALL)
    par = FinetuneConfig(output=str(tmp_path / "par"), **base)
    one = FinetuneConfig(output=str(tmp_path / "one"), **base)
    notes: list[str] = []
    got = run_members([(par, s) for s in range(4)], task=bace, jobs=2, note=notes.append)
    ref = run_members([(one, s) for s in range(4)], task=bace)
    assert any("over 2 processes" in n for n in notes), notes
    for a, b in zip(got, ref):
        assert a["seed"] == b["seed"] and a["last"] == b["last"] and a["best_valid"] == b["best_valid"]
        assert a["fused"]["kernels"] == "sparse"


def test_kernel_choice(bace):
    cfg = FinetuneConfig(**SMALL)
    assert resolve_kernels(cfg, torch.device("cpu")) == "sparse"
    assert resolve_kernels(cfg, torch.device("cuda")) == "batched"
    assert resolve_kernels(dataclasses.replace(cfg, fused_kernels="exact"), torch.device("cpu")) == "exact"
    with pytest.raises(ValueError, match="CPU kernel set"):
        resolve_kernels(dataclasses.replace(cfg, fused_kernels="sparse"), torch.device("cuda"))
    with pytest.raises(ValueError, match="fused_kernels"):
        FinetuneConfig(fused_kernels="fast", **SMALL)


def test_batchnorm_relu_dropout_node_equals_torch_ops():
    """The sparse kernels' one-node BatchNorm + ReLU + dropout: the same output and running statistics
    as ``F.batch_norm`` + ``relu`` + ``mask * scale`` model by model, and its backward against
    finite differences (float64), with a ReLU (gate from the output) and without (gate from the mask);
    in the bf16 row layout too (each model's nodes followed by pad rows): pad rows are 0 in the output
    and the input gradient, whatever they hold, and never reach the statistics."""
    import torch.nn.functional as F

    from gnnpretrain.nn.stacked import _BatchNormReluDropout

    torch.manual_seed(0)
    seg, d = [37, 50, 41], 16
    for relu in (True, False):
        for stride in (seg, [48, 64, 41]):
            x = (torch.randn(sum(stride), d, dtype=torch.float64) * 3 + 5).requires_grad_()
            w = torch.rand(3, d, dtype=torch.float64).add_(0.5).requires_grad_()
            b = torch.randn(3, d, dtype=torch.float64).requires_grad_()
            masks = (torch.rand(sum(stride), d) < 0.5).double()
            rm, rv = torch.zeros(3, d, dtype=torch.float64), torch.ones(3, d, dtype=torch.float64)
            got = _BatchNormReluDropout.apply(x, w, b, rm, rv, seg, stride, relu, masks, 2.0, 0.1, 1e-5)
            ref_rm, ref_rv, want = rm.new_zeros(3, d), rv.new_ones(3, d), []
            for g, (xg, mg) in enumerate(zip(x.split(stride), masks.split(stride))):
                z = F.batch_norm(xg[:seg[g]], ref_rm[g], ref_rv[g], w[g], b[g], True, 0.1, 1e-5)
                want.append(torch.cat([(F.relu(z) if relu else z) * mg[:seg[g]] * 2.0, z.new_zeros(stride[g] - seg[g], d)]))
            torch.testing.assert_close(got, torch.cat(want))
            torch.testing.assert_close(rm, ref_rm)
            torch.testing.assert_close(rv, ref_rv)

            def node(x, w, b):
                return _BatchNormReluDropout.apply(x, w, b, rm.clone(), rv.clone(), seg, stride, relu, masks, 2.0, 0.1, 1e-5)

            assert torch.autograd.gradcheck(node, (x, w, b))
            x.grad = None
            node(x, w, b).backward(torch.randn(sum(stride), d, dtype=torch.float64))
            pads = torch.cat([torch.arange(a + n, a + r) for a, n, r in zip([0, 48, 112], seg, stride)])
            assert pads.numel() == (0 if stride is seg else 25) and x.grad[pads].eq(0).all()


def test_relu_between_products_is_relu():
    """``relu_out`` on one per-model product and ``relu_in`` on the next compute ``F.relu`` between
    them, forward and backward (float64 finite differences, and equal to the plain composition)."""
    torch.manual_seed(0)
    seg = [5, 3, 4]
    x = torch.randn(sum(seg), 6, dtype=torch.float64, requires_grad=True)
    w1, b1 = torch.randn(3, 7, 6, dtype=torch.float64, requires_grad=True), torch.randn(3, 7, dtype=torch.float64, requires_grad=True)
    w2, b2 = torch.randn(3, 4, 7, dtype=torch.float64, requires_grad=True), torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    f64 = torch.float64

    def fused(x, w1, b1, w2, b2):
        z = _PerModelLinear.apply(x, w1, b1, seg, f64, f64, True, False)
        return _PerModelLinear.apply(z, w2, b2, seg, f64, f64, False, True)

    def plain(x, w1, b1, w2, b2):
        z = torch.relu(_PerModelLinear.apply(x, w1, b1, seg, f64, f64))
        return _PerModelLinear.apply(z, w2, b2, seg, f64, f64)

    args = (x, w1, b1, w2, b2)
    assert torch.autograd.gradcheck(fused, args)
    g = torch.randn(sum(seg), 4, dtype=f64)
    ga = torch.autograd.grad(fused(*args), args, g)
    gb = torch.autograd.grad(plain(*args), args, g)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)
    # and without a bias (layer 0's table product)
    assert torch.autograd.gradcheck(lambda x, w: _PerModelLinear.apply(x, w, None, seg, f64, f64), (x, w1))


def test_keep_bits_distribution_and_determinism():
    """Dropout masks of the fused BatchNorm node: 8 bits per element where the keep probability is a
    multiple of 1/256 (0.5), else 16; Bernoulli(keep) in distribution, deterministic per generator."""
    from gnnpretrain.nn.stacked import _keep_bits

    gen = torch.Generator().manual_seed(0)
    for keep in (0.5, 0.75, 0.9, 0.1):
        m = _keep_bits(400, 300, keep, gen)
        assert m.dtype == torch.float32 and set(m.unique().tolist()) <= {0.0, 1.0}
        assert abs(m.mean().item() - keep) < 0.005
    assert _keep_bits(3, 4, 1.0, gen) is None
    out = torch.empty(50, 30)
    a = _keep_bits(50, 30, 0.5, torch.Generator().manual_seed(7), out=out)
    assert a is out and torch.equal(a, _keep_bits(50, 30, 0.5, torch.Generator().manual_seed(7)))
