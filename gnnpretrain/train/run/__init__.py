"""The run layer under every fine-tuning engine: configuration, run folders, data, scoring, records.

Nothing here knows which engine runs (:mod:`gnnpretrain.train.separate`, :mod:`gnnpretrain.train.fused`);
both build their models, batches, scores and seed files from these functions, so their results are
interchangeable. Layers, bottom to top: ``config`` <- ``paths`` <- ``data`` / ``evaluate`` <- ``records``.
"""

from __future__ import annotations

from gnnpretrain.train.run.config import (
    REPORT_MODES,
    RESULT_FORMAT,
    RESULT_KEY_DEFAULTS,
    RESULT_KEYS,
    ConfigMismatchError,
    FinetuneConfig,
    config_mismatch,
    recorded_config,
    sha256_file,
)
from gnnpretrain.train.run.data import build_model, check_split_has_classes, eval_batches, load_task, train_loader
from gnnpretrain.train.run.evaluate import (
    amp_note,
    autocast,
    best_epoch,
    evaluate,
    predict,
    score_predictions,
    scores_from_predictions,
)
from gnnpretrain.train.run.paths import (
    checkpoint_label,
    dataset_dirname,
    default_output,
    output_dir,
    safe_name,
    seed_path,
)
from gnnpretrain.train.run.records import load_finished, make_record, summarize, summary_line

__all__ = [
    "REPORT_MODES", "RESULT_FORMAT", "RESULT_KEY_DEFAULTS", "RESULT_KEYS", "ConfigMismatchError", "FinetuneConfig",
    "config_mismatch", "recorded_config", "sha256_file", "build_model", "check_split_has_classes", "eval_batches",
    "load_task", "train_loader", "amp_note", "autocast", "best_epoch", "evaluate", "predict", "score_predictions",
    "scores_from_predictions", "checkpoint_label", "dataset_dirname", "default_output", "output_dir", "safe_name",
    "seed_path", "load_finished", "make_record", "summarize", "summary_line",
]
