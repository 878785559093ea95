"""Strategy comparison: pre-train what is missing, fine-tune every (row, dataset, seed), report.

The comparison is a small job graph, every node of which leaves a file behind, so a killed run
resumes where it stopped and a finished one re-runs in seconds:

1. **pre-training** (one job per strategy, chains in order): ``scripts/pretrain.py`` as a subprocess
   into ``<out>/pretrain/<name>-<hash>/`` (``--resume``, so an interrupted pre-training continues);
   a ``done.json`` marker is written when it returns successfully. ``a+b`` pre-trains ``a``, then
   ``b`` starting from ``a``'s ``model.pth``. The hash covers every pre-training option, so another
   profile never reuses a checkpoint made with different settings.
2. **fine-tuning** (independent, ``jobs`` processes, one torch thread each):
   :func:`gnnpretrain.train.finetune.run_seed` writes ``<out>/finetune/<row>/<dataset>/seed<k>.json``
   atomically; finished files with a matching configuration are skipped (checked up front, so a
   complete comparison starts no process at all).
3. **report**: the table of the paper's Table 1 shape (rows = strategies, columns = data sets +
   average, test ROC-AUC mean ± std over seeds, report mode named) as Markdown and CSV, the
   negative-transfer marks (:mod:`gnnpretrain.stats`) and a gain-over-baseline figure.

Row names (``--strategies``):

* ``none`` — no pre-training (GIN, or the ``--gnn-type``); ``none:gcn`` — no pre-training, GCN;
* a strategy name (``contextpred``, ``attrmasking``, ``edgepred``, ``infomax``, ``supervised``);
* ``a+b`` — ``a`` then ``b`` (the paper's "graph-level supervised after node-level" rows);
* ``ref:<file stem>`` — a published checkpoint of the paper from the reference-checkpoint folder,
  e.g. ``ref:gcn_supervised_contextpred`` (architecture = the stem's first word); its baseline is
  ``none:<arch>``, added automatically;
* any name given a file with ``--checkpoint NAME=PATH`` (architecture taken from a leading
  ``gcn_``/``gat_``/``graphsage_``/``gin_`` in the name, else ``--gnn-type``).

Every pre-trained row is compared against the no-pre-training row *of the same architecture*.

The package keeps the three roles apart, each readable on its own:

* :mod:`.plan` — profiles, :class:`CompareConfig`, rows, where each job's output lives, what is missing;
* :mod:`.run` — pre-training subprocesses, the fine-tuning worker pool, :func:`run_comparison`;
* :mod:`.report` — per-cell statistics, Markdown/CSV tables, the gain figure.

Everything public is re-exported here, so ``from gnnpretrain.train.compare import ...`` is the
stable import.
"""

from __future__ import annotations

from gnnpretrain.train.compare.plan import (
    GNN_TYPES,
    PROFILES,
    REPORT_MODES,
    CompareConfig,
    Row,
    build_rows,
    config_from_profile,
    finetune_config,
    plan_finetunes,
    pretrain_dir,
)
from gnnpretrain.train.compare.report import (
    collect,
    csv_table,
    gain_figure,
    markdown_table,
    summarize_results,
    write_report,
)
from gnnpretrain.train.compare.run import ensure_pretrained, run_comparison

__all__ = [
    "GNN_TYPES", "PROFILES", "REPORT_MODES", "CompareConfig", "Row", "build_rows", "config_from_profile",
    "finetune_config", "plan_finetunes", "pretrain_dir", "collect", "csv_table", "gain_figure",
    "markdown_table", "summarize_results", "write_report", "ensure_pretrained", "run_comparison",
]
