"""Training: pre-training (:mod:`.pretrain`) and fine-tuning, in layers.

Fine-tuning, bottom to top (each layer imports only the ones below it; docs/INTERFACES.md):

* :mod:`.tasks`, :mod:`.objectives` — what is learned (data set, split, metric, loss);
* :mod:`.run` — the run layer: config, run folders, data, scoring, seed records; engine-agnostic;
* :mod:`.separate` and :mod:`.fused` — the two engines, siblings over the run layer;
  :mod:`.workers` — worker processes that die with their parent (used by both);
* :mod:`.engines` — :func:`run_finetune` chooses the engine for a config;
* :mod:`.compare` — comparisons, the results ledger, reports and the campaign.

The fine-tuning API is re-exported here, lazily (importing :mod:`gnnpretrain.train` loads nothing):
``from gnnpretrain.train import FinetuneConfig, run_finetune``.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "run_finetune": "gnnpretrain.train.engines",
    "finetune_seed": "gnnpretrain.train.separate",
    "run_seed": "gnnpretrain.train.separate",
    "run_members": "gnnpretrain.train.fused",
    "train_group": "gnnpretrain.train.fused",
}
_RUN = ("FinetuneConfig", "RESULT_KEYS", "REPORT_MODES", "ConfigMismatchError", "build_model", "load_task",
        "output_dir", "seed_path", "load_finished", "make_record", "summarize", "summary_line")

__all__ = [*_EXPORTS, *_RUN]


def __getattr__(name: str) -> Any:
    import importlib

    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _RUN:
        return getattr(importlib.import_module("gnnpretrain.train.run"), name)
    raise AttributeError(f"module 'gnnpretrain.train' has no attribute {name!r}")
