"""Molecule embeddings from a pre-trained encoder: a function and a scikit-learn transformer.

``embed(smiles, model)`` featurizes each SMILES the way the encoder was trained (the reference or OGB
featurizer, read from the encoder's input kind), runs the encoder in eval mode (no dropout, BatchNorm
running statistics) and pools the node embeddings of each molecule: ``"mean"`` (the default, the same
pooling as fine-tuning's ``GNNGraphPred``), ``"sum"`` or ``"max"``. The output keeps one row per input;
rows of SMILES that RDKit cannot parse (or the featurizer cannot encode) are NaN and listed in ``failed``,
so results stay aligned with the caller's table. As in scikit-learn, no input at all, or no input that
could be featurized, is an error (:class:`~gnnpretrain.errors.EmptyInputError`, with ``.failed``) rather
than an empty or all-NaN result that a pipeline would carry on with.

:class:`MoleculeEmbedder` wraps the same call for ``sklearn.pipeline.Pipeline``; by default it raises on
an unparseable SMILES (a classifier downstream cannot use a NaN row), ``on_error="nan"`` keeps NaN rows.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np
import torch

from gnnpretrain.errors import EmptyInputError

__all__ = ["Embeddings", "embed", "resolve_encoder", "MoleculeEmbedder", "POOLINGS"]

POOLINGS = ("mean", "sum", "max")


class Embeddings(NamedTuple):
    """``array`` float32 ``[n, d]`` (NaN rows for failed inputs) and ``failed`` (input indices)."""

    array: np.ndarray
    failed: list[int]


def resolve_encoder(model: Any, cache: str | os.PathLike | None = None) -> torch.nn.Module:
    """An encoder from a hub name, a file path or an encoder (a ``GNN``, or a ``GNNGraphPred``'s ``.gnn``)."""
    from gnnpretrain.nn import GNN

    if isinstance(model, GNN):
        return model
    if isinstance(model, torch.nn.Module) and isinstance(getattr(model, "gnn", None), GNN):
        return model.gnn
    if isinstance(model, (str, os.PathLike)):
        from gnnpretrain import hub

        return hub.load(model, cache=cache)
    raise TypeError(f"model must be a hub name, a file path or a gnnpretrain.nn.GNN, got {type(model).__name__}")


def _featurizer_of(encoder: torch.nn.Module, featurizer: str | None) -> str:
    if featurizer is not None:
        return featurizer
    info = getattr(encoder, "hub_info", None) or {}
    if info.get("featurizer"):
        return info["featurizer"]
    if encoder.input in ("reference", "ogb"):
        return encoder.input
    raise ValueError(
        f"this encoder has input={encoder.input!r} (a protein-network encoder); molecule embeddings need a chem "
        "encoder (input 'reference' or 'ogb')"
    )


def _as_smiles_list(smiles: Any) -> list[str]:
    if isinstance(smiles, str):
        raise TypeError("embed() takes a list of SMILES; wrap a single SMILES in a list")
    if hasattr(smiles, "to_numpy"):  # pandas Series / one-column DataFrame
        smiles = smiles.to_numpy()
    arr = np.asarray(smiles, dtype=object)
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise ValueError(f"expected one column of SMILES, got an array of shape {arr.shape}")
        arr = arr[:, 0]
    return ["" if s is None or (isinstance(s, float) and np.isnan(s)) else str(s) for s in arr.reshape(-1)]


@torch.no_grad()
def embed(
    smiles: Iterable[str],
    model: Any,
    pooling: str = "mean",
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    featurizer: str | None = None,
    progress: bool = False,
    cache: str | os.PathLike | None = None,
) -> Embeddings:
    """Embed molecules with a pre-trained encoder; returns ``Embeddings(array [n, d], failed)``.

    Args:
        smiles: SMILES strings (list, array, pandas Series).
        model: a hub name (``"gin_supervised_contextpred"``), an encoder file path, or a ``GNN``.
        pooling: ``"mean"`` | ``"sum"`` | ``"max"`` over each molecule's node embeddings.
        batch_size: molecules per forward pass (memory, not results).
        device: ``"cpu"``, ``"cuda"``, ``"auto"``.
        featurizer: override the featurizer (default: the one the encoder was trained with).
        progress: show a progress bar over batches.
    """
    from torch_geometric.data import Batch
    from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

    from gnnpretrain.chem.featurize import smiles_to_graph
    from gnnpretrain.utils import resolve_device

    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pool = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}[pooling]
    items = _as_smiles_list(smiles)
    if not items:
        raise EmptyInputError("no SMILES to embed: found 0 samples while a minimum of 1 is required")
    encoder = resolve_encoder(model, cache=cache)
    feat = _featurizer_of(encoder, featurizer)
    device = resolve_device(device)
    was_training = encoder.training
    param = next(encoder.parameters())
    original_device = param.device
    encoder.eval().to(device)

    out = np.full((len(items), encoder.out_dim), np.nan, dtype=np.float32)
    failed: list[int] = []
    starts = range(0, len(items), int(batch_size))
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="embedding", unit="batch", dynamic_ncols=True)
    try:
        for start in starts:
            graphs, rows = [], []
            for i in range(start, min(start + int(batch_size), len(items))):
                g = smiles_to_graph(items[i], featurizer=feat) if items[i] else None
                if g is None or g.num_nodes == 0:
                    failed.append(i)
                else:
                    graphs.append(g)
                    rows.append(i)
            if not graphs:
                continue
            batch = Batch.from_data_list(graphs).to(device)
            nodes = encoder(batch.x, batch.edge_index, batch.edge_attr)
            out[rows] = pool(nodes, batch.batch, size=len(graphs)).float().cpu().numpy()
    finally:
        encoder.train(was_training)
        encoder.to(original_device)
    if len(failed) == len(items):
        raise EmptyInputError(f"none of the {len(items)} SMILES could be featurized ({_shown(items, failed)}); check "
                              "that the column holds SMILES", failed=failed)
    return Embeddings(out, failed)


def _shown(items: Sequence[str], failed: Sequence[int]) -> str:
    return ", ".join(f"{i}: {items[i]!r}" for i in failed[:5]) + (", ..." if len(failed) > 5 else "")


def _sklearn_bases() -> tuple[type, ...]:
    from sklearn.base import BaseEstimator, TransformerMixin

    return (TransformerMixin, BaseEstimator)


class MoleculeEmbedder(*_sklearn_bases()):
    """scikit-learn transformer: SMILES column → pre-trained embeddings (``fit`` loads the encoder).

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> clf = make_pipeline(MoleculeEmbedder("gcn_supervised_contextpred"), LogisticRegression(max_iter=1000))
    >>> clf.fit(train_smiles, train_labels).predict(test_smiles)                      # doctest: +SKIP

    Args mirror :func:`embed`; ``on_error="raise"`` (default) fails on an unparseable SMILES, naming it,
    ``"nan"`` returns NaN rows (for an imputer or a NaN-aware model downstream).
    """

    def __init__(self, model: Any = "gin_supervised_contextpred", pooling: str = "mean", batch_size: int = 256,
                 device: str = "cpu", featurizer: str | None = None, on_error: str = "raise") -> None:
        self.model = model
        self.pooling = pooling
        self.batch_size = batch_size
        self.device = device
        self.featurizer = featurizer
        self.on_error = on_error

    def fit(self, X: Any = None, y: Any = None) -> "MoleculeEmbedder":
        if self.on_error not in ("raise", "nan"):
            raise ValueError(f"on_error must be 'raise' or 'nan', got {self.on_error!r}")
        if X is not None and len(_as_smiles_list(X)) == 0:
            raise EmptyInputError("MoleculeEmbedder.fit(): found 0 samples while a minimum of 1 is required")
        self.encoder_ = resolve_encoder(self.model)
        self.n_features_out_ = int(self.encoder_.out_dim)
        return self

    def transform(self, X: Any) -> np.ndarray:
        if not hasattr(self, "encoder_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("MoleculeEmbedder is not fitted yet; call fit() (it loads the encoder) first")
        smiles = _as_smiles_list(X)
        result = embed(smiles, self.encoder_, pooling=self.pooling, batch_size=self.batch_size,
                       device=self.device, featurizer=self.featurizer)
        if result.failed and self.on_error == "raise":
            raise ValueError(
                f"{len(result.failed)} of {len(smiles)} SMILES could not be featurized ({_shown(smiles, result.failed)}); "
                "clean them first or use on_error='nan'"
            )
        return result.array

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        n = getattr(self, "n_features_out_", None)
        if n is None:
            raise ValueError("call fit() first: the number of features is the encoder's output width")
        return np.asarray([f"emb{i}" for i in range(n)], dtype=object)
