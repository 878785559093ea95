"""The search space of a fine-tuning hyperparameter search, and a trial's parameters as a configuration.

:func:`search_space` is the table (also in docs/hpopt.md); each :class:`Param` names the
:class:`~gnnpretrain.train.run.config.FinetuneConfig` field it sets:

=============  ==========================  ===============================================================
parameter      values                      notes
=============  ==========================  ===============================================================
lr             log-uniform 1e-4 .. 1e-2    Adam learning rate
dropout        uniform 0 .. 0.6            encoder dropout
batch_size     16, 32, 64, 128             training batch size
epochs         E/4, E/2, E (rounded up)    E = the base configuration's ``epochs`` (the most a trial trains)
freeze         False, True                 encoder frozen, only the head trains; only with a checkpoint
graph_pooling  mean, sum, max              graph readout
=============  ==========================  ===============================================================

Every other option stays the base configuration's. :func:`trial_config` turns a trial's parameters into
a configuration (``dataclasses.replace`` of the base); :func:`cli_options` writes a configuration the
way ``scripts/finetune.py --config FILE`` reads it back.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from gnnpretrain.errors import UserError
from gnnpretrain.train.run.config import FinetuneConfig

__all__ = ["Param", "SEARCHABLE", "search_space", "suggest", "Suggest", "trial_config", "cli_options",
           "describe_space"]

#: Every parameter the search can vary, in the order of the table above.
SEARCHABLE = ("lr", "dropout", "batch_size", "epochs", "freeze", "graph_pooling")


@dataclass(frozen=True)
class Param:
    """One searched option: ``kind`` ``"log-uniform"`` / ``"uniform"`` (``low`` .. ``high``) or
    ``"choice"`` (``choices``)."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    doc: str = ""

    def suggest(self, trial: Any) -> Any:
        """The value for an Optuna trial (``trial.suggest_float`` / ``suggest_categorical``)."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        return trial.suggest_float(self.name, self.low, self.high, log=self.kind == "log-uniform")

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(str(c) for c in self.choices)
        return f"{self.kind} {self.low:g} .. {self.high:g}"


def search_space(base: FinetuneConfig, params: list[str] | None = None) -> dict[str, Param]:
    """The parameters a search over ``base`` varies (``params``: a subset of :data:`SEARCHABLE`)."""
    e = int(base.epochs)
    epochs = tuple(sorted({max(1, math.ceil(e / 4)), max(1, math.ceil(e / 2)), e}))
    space = {
        "lr": Param("lr", "log-uniform", 1e-4, 1e-2, doc="Adam learning rate"),
        "dropout": Param("dropout", "uniform", 0.0, 0.6, doc="encoder dropout"),
        "batch_size": Param("batch_size", "choice", choices=(16, 32, 64, 128), doc="training batch size"),
        "epochs": Param("epochs", "choice", choices=epochs, doc=f"training epochs (at most the base's {e})"),
        "freeze": Param("freeze", "choice", choices=(False, True), doc="encoder frozen, only the head trains"),
        "graph_pooling": Param("graph_pooling", "choice", choices=("mean", "sum", "max"), doc="graph readout"),
    }
    wanted = list(params) if params else [p for p in SEARCHABLE if p != "freeze" or base.input_model_file]
    unknown = [p for p in wanted if p not in space]
    if unknown:
        raise UserError(f"--hpopt-params: unknown parameter(s) {', '.join(unknown)}; searchable: {', '.join(SEARCHABLE)}")
    if "freeze" in wanted and not base.input_model_file:
        raise UserError("--hpopt-params freeze needs --input-model-file (a frozen random encoder learns nothing)")
    return {p: space[p] for p in SEARCHABLE if p in wanted}


def describe_space(space: dict[str, Param]) -> dict[str, str]:
    return {name: p.describe() for name, p in space.items()}


def suggest(trial: Any, space: dict[str, Param]) -> dict[str, Any]:
    """A trial's parameters, suggested by ``trial`` (an Optuna trial, or Ray's stand-in for one)."""
    return {name: p.suggest(trial) for name, p in space.items()}


class Suggest:
    """:func:`suggest` as a picklable callable returning nothing (Ray Tune's define-by-run search space)."""

    def __init__(self, space: dict[str, Param]) -> None:
        self.space = space

    def __call__(self, trial: Any) -> None:
        suggest(trial, self.space)


def trial_config(base: FinetuneConfig, params: dict[str, Any], output: str | None, seeds: list[int]) -> FinetuneConfig:
    """``base`` with a trial's parameters, trained on ``seeds`` into ``output``, quietly, one model at a
    time (trials run the separate engine, whose per-epoch hook reports to the pruner)."""
    return dataclasses.replace(base, **params, seeds=list(seeds), output=output, name=None, progress=False,
                               jobs=1, fused=False, overwrite=False)


#: FinetuneConfig fields that ``scripts/finetune.py`` takes under another flag name.
_FLAG_NAMES = {"task_type": "task"}
#: The options that :func:`cli_options` writes: what a fine-tune computes (the result keys), not where.
_CLI_FIELDS = ("dataset", "domain", "input_model_file", "gnn_type", "num_layer", "emb_dim", "JK", "graph_pooling",
               "dropout", "epochs", "batch_size", "lr", "decay", "split", "split_seed", "featurizer",
               "smiles_column", "target_columns", "task_type", "amp", "freeze",
               "fused")  # the trials' engine (separate runs): --config best.json reproduces the best trial bitwise


def cli_options(config: FinetuneConfig) -> dict[str, Any]:
    """``config``'s result-changing options as ``scripts/finetune.py --config FILE`` reads them (flag names
    with ``_``; unset options left out, so the script's defaults apply)."""
    d = config.to_dict()
    out = {}
    for key in _CLI_FIELDS:
        value = d[key]
        if value is None:
            continue
        if key == "target_columns":
            value = ",".join(value)
        out[_FLAG_NAMES.get(key, key)] = value
    return out
