"""Hyperparameter search for fine-tuning (``scripts/finetune.py --hpopt N``; the ``optuna`` extra, and
``ray`` for ``--engine ray``). Importing this package imports neither.

* :mod:`.space` — the search space (lr, dropout, batch size, epochs, freeze, graph pooling), a trial's
  parameters as a :class:`~gnnpretrain.train.run.config.FinetuneConfig`, and ``best.json``'s form;
* :mod:`.study` — the Optuna study: storage (SQLite by default, any RDB URL to share), which search it
  belongs to, resuming (N = finished trials; trials of a killed search are queued again), the TPE
  sampler, the median pruner and the local engine's objective;
* :mod:`.report` — ``trials.csv``, ``best.json`` and ``trials.png``;
* :mod:`.search` — :func:`run_hpopt` ``(base config, HpoptOptions) -> summary``, either engine;
* :mod:`.tune` — the Ray Tune engine (OptunaSearch on the same study, ASHA), imported only for it.

Layer: beside :mod:`gnnpretrain.train.compare` (it runs the separate engine through the run layer).
See docs/hpopt.md.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "HpoptOptions": "gnnpretrain.train.hpopt.search",
    "run_hpopt": "gnnpretrain.train.hpopt.search",
    "hpopt_dir": "gnnpretrain.train.hpopt.search",
    "default_study_name": "gnnpretrain.train.hpopt.search",
    "ENGINES": "gnnpretrain.train.hpopt.search",
    "search_space": "gnnpretrain.train.hpopt.space",
    "SEARCHABLE": "gnnpretrain.train.hpopt.space",
    "Param": "gnnpretrain.train.hpopt.space",
    "trial_config": "gnnpretrain.train.hpopt.space",
    "cli_options": "gnnpretrain.train.hpopt.space",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    import importlib

    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gnnpretrain.train.hpopt' has no attribute {name!r}")
