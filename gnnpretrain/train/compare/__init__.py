"""Strategy comparison: pre-train what is missing, fine-tune every (row, dataset, seed), report.

The comparison is a small job graph, every node of which leaves a file behind, so a killed run
resumes where it stopped and a finished one re-runs in seconds:

1. **pre-training** (one job per strategy, chains in order): ``scripts/pretrain.py`` as a subprocess
   into ``<out>/pretrain/<name>-<hash>/`` (``--resume``, so an interrupted pre-training continues);
   a ``done.json`` marker is written when it returns successfully. ``a+b`` pre-trains ``a``, then
   ``b`` starting from ``a``'s ``model.pth``. The hash covers every pre-training option, so another
   profile never reuses a checkpoint made with different settings.
2. **fine-tuning** (independent, ``jobs`` processes, one torch thread each, dying with the parent):
   :func:`gnnpretrain.train.separate.run_seed` writes ``<out>/finetune/<row>/<dataset>/seed<k>.json``
   atomically (with its per-epoch curve; run folders are not committed) and the parent appends one
   line per seed to the **ledger** (:mod:`.ledger`): ``<domain>/results/<profile>.csv`` for a profile
   run with the default output folder, else ``<out>/ledger.csv``, or ``--ledger PATH``. Cells in the
   ledger with the same configuration are skipped; a ledger of another configuration is refused
   before any training; finished seed files missing from the ledger are copied into it.
3. **report**: built from the ledger alone — the table of the paper's Table 1 shape (rows =
   strategies, columns = data sets + average, test ROC-AUC mean ± std over seeds, both epoch rules)
   as Markdown and CSV, the negative-transfer marks (:mod:`gnnpretrain.stats`), a gain-over-baseline
   bar figure and a gain grid (row x data set). ``scripts/compare.py --report-only --ledger PATH``
   rebuilds them without any run folder.

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
* :mod:`.ledger` — the committed results ledger (one CSV line per row x data set x seed);
* :mod:`.report` — per-cell statistics, Markdown/CSV tables, the gain figures, built from the ledger.

Everything public is re-exported here, so ``from gnnpretrain.train.compare import ...`` is the
stable import.
"""

from __future__ import annotations

from gnnpretrain.train.compare.plan import (
    GNN_TYPES,
    PROFILES,
    REPORT_MODES,
    CompareConfig,
    FinetunePlan,
    Row,
    build_rows,
    config_from_profile,
    finetune_config,
    plan_finetunes,
    pretrain_dir,
)
from gnnpretrain.train.compare.ledger import Ledger, LedgerMismatchError, line_from_record
from gnnpretrain.train.compare.report import (
    csv_table,
    gain_figure,
    gain_grid,
    markdown_table,
    report_from_ledger,
    results_from_ledger,
    summarize_results,
    write_report,
)
from gnnpretrain.train.compare.run import ensure_pretrained, run_comparison

__all__ = [
    "GNN_TYPES", "PROFILES", "REPORT_MODES", "CompareConfig", "Row", "build_rows", "config_from_profile",
    "finetune_config", "plan_finetunes", "pretrain_dir", "FinetunePlan", "Ledger", "LedgerMismatchError",
    "line_from_record", "csv_table", "gain_figure", "gain_grid", "markdown_table", "report_from_ledger",
    "results_from_ledger", "summarize_results", "write_report", "ensure_pretrained", "run_comparison",
]
