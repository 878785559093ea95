"""Compatibility module (kept for one release): the fine-tuning API under its old import path.

``from gnnpretrain.train.finetune import FinetuneConfig, run_finetune`` keeps working. The code now
lives in the run layer (:mod:`gnnpretrain.train.run`: config, paths, data, scoring, records), the
separate engine (:mod:`gnnpretrain.train.separate`) and the engine choice
(:mod:`gnnpretrain.train.engines`); new code imports from there (or from :mod:`gnnpretrain.train`).
"""

from __future__ import annotations

from gnnpretrain.train.engines import run_finetune
from gnnpretrain.train.run import *  # noqa: F401,F403
from gnnpretrain.train.run import __all__ as _run_all
from gnnpretrain.train.separate import BATCH_PROGRESS_MIN, epoch_scores, finetune_seed, run_seed, train_epoch

__all__ = [*_run_all, "run_finetune", "finetune_seed", "run_seed", "train_epoch", "epoch_scores", "BATCH_PROGRESS_MIN"]
