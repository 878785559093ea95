"""The fused engine: G fine-tunes of one architecture on one data set as one computation.

The protocol's compute is fine-tuning (10 seeds x every checkpoint x every data set), and those runs
differ only in seed and starting checkpoint. :func:`run_members` trains any mix of ``(config, seed)``
pairs that share the architecture and every result-changing option except the checkpoint as groups
of :class:`~gnnpretrain.nn.stacked.StackedGraphPred` (parameters stacked on a model axis, message
passing on the disjoint union of their batches, one Adam over the stacked tensors — Adam is
element-wise, so that *is* G Adams with the same lr / eps / weight decay), in this process or spread
over worker processes (``jobs``: CPU processes of one thread, or one process per GPU).

Three kernel sets (``FinetuneConfig.fused_kernels``, :func:`resolve_kernels`):

* ``sparse`` (CPU default): each layer's neighbourhood sum as one sparse-matrix product, per-model
  dense layers writing into one output (bf16 under ``amp``, in fixed-height blocks so oneDNN's
  compiled kernels are reused), dropout masks from raw random bits, torch's fused Adam. Equal to separate runs to float rounding step by step (``tests/train/test_sparse_kernels.py``)
  and in distribution over whole runs (``benchmarks/validate_fused.py``); the fast path
  (``benchmarks/RESULTS.md``).
* ``exact`` (CPU): torch's own kernels model by model, bit-equal to separate runs — the reference
  for the equivalence tests.
* ``batched`` (GPU default): padded layout, one batched matmul per layer, masked BatchNorm.

A model's training never depends on the group it is in or its position there (tested bitwise for
``sparse`` and ``exact``), so a seed gives the same result in a group of 2 or of 40, in one process
or in a worker — at the same torch thread count (another count splits some sums differently).

With the ``exact`` kernels each model computes what its separate run
(:func:`gnnpretrain.train.separate.finetune_seed`) computes:

* initialisation: ``seed_everything(seed)`` then ``build_model`` — the G plain models are built
  exactly as separate runs build them, then stacked;
* batch order: its own ``torch.Generator().manual_seed(seed)`` driving the same ``DataLoader``
  sampler a separate run uses (only the graph *indices* are drawn that way; the G batches are then
  collated together from flat tensors of the training split);
* dropout: on CPU its own generator, continuing the global RNG state a separate run has after
  building its model, so the masks are bit-identical; on CUDA independent per-model masks from the
  device RNG (statistically, not bitwise, the separate run's);
* evaluation: every valid/test batch is collated once and scored by all models (in chunks of models
  that bound memory), with the same metric function as :func:`~gnnpretrain.train.run.evaluate.evaluate`.

Tested equal to separate runs (``tests/train/test_sweep.py``, exact kernels): training losses of the
first 20 steps bit-equal (the issue asks 1e-5 relative) for GIN and GAT (and GCN/GraphSAGE ad hoc),
from scratch and from checkpoints, dropout 0 and 0.5; whole records of a group of 10 over two epochs
equal. (Groups of >= 9 used to drift at an epoch's last, partial batch: the loss was one call over all
models, and torch's vectorised ``exp`` rounds its loop body and tail differently, so a model's entries
fell in position-dependent lanes. The loss is now taken model by model.) Why the sparse kernels are
only rounding-equal over many steps: Adam's first steps move every parameter by about ``lr`` whatever
its gradient's size, so parameters whose true gradient is ~0 (a bias before a BatchNorm, a unit that
is almost never active) take steps decided by rounding noise; 1e-7 differences at step 0 reach 1e-3 in
the loss within a few steps — as a separate run on another thread count would.

Records, resume and mismatch rules are those of separate runs: each seed gets the same
``seed<k>.json`` (plus bookkeeping ``"fused": {"group_size": G, ...}``), finished seeds are skipped,
a finished seed of another configuration is a :class:`~gnnpretrain.train.run.config.ConfigMismatchError`.
A group also checkpoints its whole state (stacked weights, Adam, BatchNorm statistics, generator
states, curves so far) after an epoch at most every ``checkpoint_interval_s`` seconds into
``<output>/<dataset>/.sweep-<key>.pt``, so a killed sweep continues from its last saved epoch with
the same results; the file is deleted once the group's seed files are written.

Anything the stacked model does not cover (another input encoder, attention/set2set pooling,
centre pooling, a metric other than ROC-AUC) runs as separate runs with a logged note.
"""

from __future__ import annotations

from gnnpretrain.train.fused.group import (
    CPU_FUSE_DEFAULT,
    BudgetReached,
    make_optimizer,
    per_model_loss,
    predict_group,
    state_path,
    train_group,
)
from gnnpretrain.train.fused.members import (
    auto_group_size,
    fallback_reason,
    fused_by_default,
    fusion_key,
    resolve_kernels,
    run_members,
    work_items,
)
from gnnpretrain.train.fused.store import TrainStore, index_loader

__all__ = ["run_members", "work_items", "train_group", "BudgetReached", "TrainStore", "index_loader", "fusion_key",
           "fallback_reason", "fused_by_default", "auto_group_size", "CPU_FUSE_DEFAULT", "resolve_kernels", "make_optimizer",
           "per_model_loss", "predict_group", "state_path"]
