"""Protein ego-network dataset built from public PPI + GO data, cached like the chemistry datasets.

One graph per protein of the network: its capped ego-network (:mod:`gnnpretrain.bio.egonet`), with
the centre at node 0, 9 edge features per edge (:mod:`gnnpretrain.bio.ppi`), the centre's own GO
labels (:mod:`gnnpretrain.bio.labels`) and a recorded split. Raw files are read from the data root
(which may be read-only); processed tensors go to ``<cache>/bio/<name>_<config hash>/``.

Per-graph fields (see docs/INTERFACES.md): ``x`` long ``[N, 1]`` all ones (the reference stores
1.0 for every node, so its checkpoints were trained on row 1 of the 2-row input embedding); ``edge_index`` ``[2, E]``;
``edge_attr`` float ``[E, 9]`` (stored as uint8, cast on access); ``center_node_idx`` long ``[1]``
(incremented by PyG when batched, like ``edge_index``, so ``batch.center_node_idx`` indexes the
batch's nodes directly); ``y`` float ``[1, T]`` downstream labels (``nan`` rows = unlabelled);
``y_pretrain`` uint8 ``[1, C]`` coarse labels (meaningful only where ``labelled``); ``labelled``
bool ``[1]``; ``protein`` long ``[1]`` (index into ``dataset.protein_ids``); ``species_id`` long ``[1]``.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch_geometric.data import Data, InMemoryDataset

from gnnpretrain.bio.egonet import EgoNetworkExtractor
from gnnpretrain.bio.labels import (
    Ontology,
    go_dir,
    label_matrix,
    load_propagated,
    propagate,
    read_annotations,
    read_parents,
    read_term_names,
    select_tasks,
)
from gnnpretrain.bio.ppi import CHANNELS, HUMAN_TAXID, human_string_path, read_string_edges
from gnnpretrain.errors import CorruptFileError, UserError
from gnnpretrain.paths import cache_dir, data_root
from gnnpretrain.safeload import load_inmemory_dataset, load_torch, save_inmemory_dataset
from gnnpretrain.utils import atomic_torch_save, atomic_write_json


class EgoData(Data):
    """``Data`` whose ``center_node_idx`` is offset by the node count when graphs are batched."""

    def __inc__(self, key: str, value: Any, *args, **kwargs) -> Any:
        if key == "center_node_idx":
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)


# Let ``torch.load(weights_only=True)`` (PyG's loader) accept the processed file.
torch.serialization.add_safe_globals([EgoData])


@dataclass
class BioConfig:
    """Everything that determines the processed dataset (its hash names the cache folder).

    ``ppi``: edge files (``None`` = the shipped STRING v12 human network). ``annotations``: a
    gene→GO table (``None`` = shipped ``human_go_direct.tsv.gz``); ``propagated=True`` reads it as
    already propagated instead of closing it over ``go_parents.tsv.gz``. ``max_centres``: build
    only this many centre proteins (random, ``subsample_seed``) — the ego-networks still come from
    the full network; used by tests and quick experiments.
    """

    ppi: list[str] | None = None
    annotations: str | None = None
    parents: str | None = None
    propagated: bool = False
    ontology: str = "BP"
    radius: int = 2
    max_neighbors: int | None = 10
    max_nodes: int | None = None
    thresholds: list[float] | float = 0.0
    min_combined_score: float = 0.0
    num_downstream: int = 40
    min_positives: int = 100
    num_coarse: int = 5000
    coarse_min_positives: int = 10
    split_seed: int = 0
    frac_train: float = 0.8
    frac_valid: float = 0.1
    test_species: int | None = None
    max_centres: int | None = None
    subsample_seed: int = 0

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


VERSION = 2


def make_splits(
    labelled: np.ndarray, species: np.ndarray, cfg: BioConfig
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split the labelled graphs; returns index arrays and a description for the metadata.

    * one species: a random protein-disjoint split (``frac_train``/``frac_valid``/rest), so a test
      centre protein is never a training centre. Other proteins do appear as *non-centre* nodes in
      training ego-networks, but nodes carry no identity (constant input), so nothing about a test
      protein's label can be read off them.
    * several species: the paper's species split — the labelled graphs of ``test_species`` (default
      human if present, else the species with most labelled graphs) are halved at random into
      ``test_pretrain`` (may be used by supervised pre-training, the paper's "test-easy") and
      ``test`` (held out, reported); the other species' labelled graphs are split 85/15 into
      train/valid.
    ``supervised_pretrain`` lists graphs whose labels supervised pre-training may use (never ``test``);
    ``unlabelled`` is the unlabelled pool.
    """
    rng = np.random.default_rng(cfg.split_seed)
    lab = np.flatnonzero(labelled)
    species_present = np.unique(species[lab]) if len(lab) else np.unique(species)
    out: dict[str, np.ndarray] = {}
    if len(np.unique(species)) <= 1:
        perm = rng.permutation(lab)
        n_tr = int(cfg.frac_train * len(perm))
        n_va = int(cfg.frac_valid * len(perm))
        out["train"], out["valid"], out["test"] = perm[:n_tr], perm[n_tr : n_tr + n_va], perm[n_tr + n_va :]
        out["test_pretrain"] = np.zeros(0, dtype=np.int64)
        desc = {"method": "protein", "frac_train": cfg.frac_train, "frac_valid": cfg.frac_valid, "seed": cfg.split_seed}
    else:
        test_sp = cfg.test_species
        if test_sp is None:
            if HUMAN_TAXID in species_present:
                test_sp = HUMAN_TAXID
            else:
                vals, counts = np.unique(species[lab], return_counts=True)
                test_sp = int(vals[np.argmax(counts)])
        if test_sp not in np.unique(species):
            raise ValueError(f"test_species {test_sp} is not in the network (species present: {np.unique(species).tolist()})")
        is_test = species[lab] == test_sp
        tv = rng.permutation(lab[~is_test])
        n_tr = int(0.85 * len(tv))
        out["train"], out["valid"] = tv[:n_tr], tv[n_tr:]
        te = rng.permutation(lab[is_test])
        half = len(te) // 2
        out["test_pretrain"], out["test"] = te[:half], te[half:]
        desc = {"method": "species", "test_species": int(test_sp),
                "train_valid_species": sorted(int(s) for s in np.unique(species[lab[~is_test]])),
                "frac_train_of_train_valid": 0.85, "test_halves": "test_pretrain (usable by supervised pre-training) / test (held out)",
                "seed": cfg.split_seed}
    for k in list(out):
        out[k] = np.sort(out[k]).astype(np.int64)
    out["supervised_pretrain"] = np.sort(np.concatenate([out["train"], out["valid"], out["test_pretrain"]]))
    out["unlabelled"] = np.flatnonzero(~labelled).astype(np.int64)
    return out, desc


class BioEgoNetworks(InMemoryDataset):
    """Protein ego-networks with GO labels (see module docstring).

    ``BioEgoNetworks(root=None, cache=None, **config)`` builds (first time) or loads the dataset;
    ``config`` keys are :class:`BioConfig` fields. Attributes after loading: ``meta`` (summary, task
    ids and names, split description), ``split`` (dict of index tensors: train, valid, test,
    test_pretrain, supervised_pretrain, unlabelled), ``task_names``, ``num_tasks``,
    ``num_pretrain_tasks``, ``protein_ids``.
    """

    def __init__(self, root: str | Path | None = None, cache: str | Path | None = None,
                 config: BioConfig | None = None, transform=None, log: bool = True, **kwargs: Any):
        cfg = config or BioConfig()
        if kwargs:
            unknown = set(kwargs) - set(BioConfig.__dataclass_fields__)
            if unknown:
                raise TypeError(f"unknown bio dataset option(s) {sorted(unknown)}; valid: {sorted(BioConfig.__dataclass_fields__)}")
            cfg = BioConfig(**{**asdict(cfg), **kwargs})
        if isinstance(cfg.ppi, (str, Path)):
            cfg.ppi = [str(cfg.ppi)]
        elif cfg.ppi is not None:
            cfg.ppi = [str(p) for p in cfg.ppi]
        self.cfg = cfg
        self.data_root = data_root(root)
        name = "string_human" if cfg.ppi is None else Path(cfg.ppi[0]).name.split(".")[0]
        folder = cache_dir(cache) / "bio" / f"{name}_v{VERSION}_{cfg.digest()}"
        from gnnpretrain.cachelock import build_lock

        # one builder per cache entry (PyG processes inside __init__ when the files are missing);
        # a parallel process waits, then finds the files
        with build_lock(folder, what=f"the bio dataset {folder.name}"):
            super().__init__(str(folder), transform=transform, log=log)
        proc = Path(self.processed_dir)
        try:
            self._load_processed(proc)
        except (UserError, OSError, ValueError, KeyError) as exc:  # damaged, foreign or unsafe: never run it, rebuild
            warnings.warn(f"bio cache {proc} is damaged ({exc}); rebuilding it", stacklevel=2)
            self.process()
            self._load_processed(proc)
        sp = self._split_payload
        self.split: dict[str, torch.Tensor] = sp["split"]
        self.protein_ids: list[str] = sp["protein_ids"]
        self.task_names: list[str] = self.meta["downstream_tasks"]
        self.num_tasks = len(self.task_names)
        self.num_pretrain_tasks = len(self.meta["coarse_tasks"])

    def _load_processed(self, proc: Path) -> None:
        """Read the three processed files safely (``weights_only=True``; see gnnpretrain.safeload)."""
        load_inmemory_dataset(self, self.processed_paths[0], data_cls=EgoData)
        self.meta = json.loads((proc / "meta.json").read_text())
        self._split_payload = load_torch(proc / "split.pt", what="processed cache")
        if not isinstance(self._split_payload, dict) or "split" not in self._split_payload:
            raise CorruptFileError(f"{proc / 'split.pt'} holds no split")

    # InMemoryDataset plumbing: raw files stay in the (possibly read-only) data root.
    @property
    def raw_file_names(self) -> list[str]:
        return []

    @property
    def processed_file_names(self) -> list[str]:
        return ["data.pt", "meta.json", "split.pt"]

    def download(self) -> None:  # raw data is read in place from the data root
        pass

    def get(self, idx: int) -> Data:
        data = super().get(idx)
        data.edge_attr = data.edge_attr.float()
        return data

    def get_idx_split(self) -> dict[str, torch.Tensor]:
        return self.split

    def summary(self) -> dict[str, Any]:
        return self.meta["summary"]

    def process(self) -> None:
        t0 = time.time()
        cfg = self.cfg
        root = self.data_root
        ppi_paths = cfg.ppi or [str(human_string_path(root))]
        net = read_string_edges(ppi_paths, cfg.thresholds, cfg.min_combined_score)
        gdir = go_dir(root)
        parents_path = Path(cfg.parents) if cfg.parents else gdir / "go_parents.tsv.gz"
        onto = Ontology(read_parents(parents_path))
        if cfg.propagated:
            ann_path = Path(cfg.annotations) if cfg.annotations else gdir / "human_go_propagated_ppi_genes.tsv.gz"
            terms = load_propagated(ann_path, cfg.ontology)
        else:
            ann_path = Path(cfg.annotations) if cfg.annotations else gdir / "human_go_direct.tsv.gz"
            terms = propagate(read_annotations(ann_path, cfg.ontology), onto)

        centres = np.arange(net.num_proteins)
        if cfg.max_centres is not None and cfg.max_centres < len(centres):
            rng = np.random.default_rng(cfg.subsample_seed)
            centres = np.sort(rng.choice(centres, size=cfg.max_centres, replace=False))
        centre_ids = [net.protein_ids[c] for c in centres]
        sel = select_tasks(terms, centre_ids, onto, cfg.num_downstream, cfg.min_positives,
                           cfg.num_coarse, cfg.coarse_min_positives)
        y = label_matrix(terms, centre_ids, sel.downstream)
        y_pre = np.nan_to_num(label_matrix(terms, centre_ids, sel.coarse), nan=0.0).astype(np.uint8)
        labelled = ~np.isnan(y).all(axis=1) if y.shape[1] else np.zeros(len(centres), bool)

        ex = EgoNetworkExtractor(net, cfg.radius, cfg.max_neighbors, cfg.max_nodes)
        data_list = []
        n_nodes = np.zeros(len(centres), np.int64)
        n_edges = np.zeros(len(centres), np.int64)
        for k, c in enumerate(centres):
            ego = ex(int(c))
            n = len(ego.nodes)
            n_nodes[k], n_edges[k] = n, ego.edge_index.shape[1]
            data_list.append(EgoData(
                x=torch.ones(n, 1, dtype=torch.long),
                edge_index=ego.edge_index,
                edge_attr=ego.edge_attr.to(torch.uint8),
                center_node_idx=torch.zeros(1, dtype=torch.long),
                y=torch.from_numpy(y[k : k + 1]),
                y_pretrain=torch.from_numpy(y_pre[k : k + 1]),
                labelled=torch.tensor([bool(labelled[k])]),
                protein=torch.tensor([int(c)]),
                species_id=torch.tensor([int(net.species[c])]),
                num_nodes=n,
            ))
        split, split_desc = make_splits(labelled, net.species[centres], cfg)
        names = read_term_names(gdir / "go_terms.tsv.gz") if (gdir / "go_terms.tsv.gz").is_file() else {}
        pos = np.nansum(y, axis=0).astype(int).tolist()
        chan_freq = net.channels.mean(axis=0)
        summary = {
            "graphs": int(len(centres)),
            "proteins_in_network": int(net.num_proteins),
            "ppi_edges_in_network": int(net.num_edges),
            "species": sorted(int(s) for s in np.unique(net.species)),
            "mean_nodes": float(n_nodes.mean()),
            "max_nodes": int(n_nodes.max()),
            "mean_edges_undirected": float(n_edges.mean() / 2),
            "mean_edges_directed": float(n_edges.mean()),
            "tasks": len(sel.downstream),
            "positives_per_task": dict(zip(sel.downstream, pos)),
            "coarse_tasks": len(sel.coarse),
            "labelled_graphs": int(labelled.sum()),
            "unlabelled_pool": int((~labelled).sum()),
            "split_sizes": {k: int(len(v)) for k, v in split.items()},
            "absent_channels": net.absent_channels,
            "absent_channels_note": "absent channels are all-zero edge-feature columns",
            "channel_frequency": dict(zip(CHANNELS, [round(float(f), 4) for f in chan_freq])),
            "build_seconds": round(time.time() - t0, 1),
        }
        meta = {
            "version": VERSION,
            "config": asdict(cfg),
            "sources": {"ppi": ppi_paths, "annotations": str(ann_path), "parents": str(parents_path)},
            "edge_features": list(CHANNELS) + ["self_loop", "mask"],
            "downstream_tasks": sel.downstream,
            "downstream_task_names": [names.get(t, t) for t in sel.downstream],
            "coarse_tasks": sel.coarse,
            "split": split_desc,
            "summary": summary,
        }
        save_inmemory_dataset(data_list, self.processed_paths[0])
        atomic_torch_save({"split": {k: torch.from_numpy(v) for k, v in split.items()},
                           "protein_ids": [net.protein_ids[c] for c in centres]}, self.processed_paths[2])
        atomic_write_json(self.processed_paths[1], meta)


OPTIONS_ENV = "GNNPRETRAIN_BIO_OPTIONS"
_INT_OR_NONE = {"max_neighbors", "max_nodes", "test_species", "max_centres"}
_STR_OR_NONE = {"annotations", "parents"}


def parse_options(text: str | None) -> dict[str, Any]:
    """Parse ``"key=value,key=value"`` into :class:`BioConfig` keyword arguments.

    Used for dataset names such as ``string_human:max_centres=3000`` and for ``$GNNPRETRAIN_BIO_OPTIONS``,
    so that the shared command-line scripts can build a non-default bio dataset. ``ppi`` takes files
    joined by ``+``; ``thresholds`` one number or 7 joined by ``+``; ``none`` clears an optional cap.
    """
    out: dict[str, Any] = {}
    if not text:
        return out
    fields = BioConfig.__dataclass_fields__
    defaults = BioConfig()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip()
        if not eq or key not in fields:
            raise ValueError(f"bad bio dataset option {part!r}: expected key=value with key one of {sorted(fields)}")
        value = value.strip()
        try:
            if key in _INT_OR_NONE:
                out[key] = None if value.lower() == "none" else int(value)
            elif key in _STR_OR_NONE:
                out[key] = None if value.lower() == "none" else value
            elif key == "ppi":
                out[key] = value.split("+")
            elif key == "thresholds":
                vals = [float(v) for v in value.split("+")]
                out[key] = vals[0] if len(vals) == 1 else vals
            elif isinstance(getattr(defaults, key), bool):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[key] = value.lower() in ("true", "1")
            elif isinstance(getattr(defaults, key), int):
                out[key] = int(value)
            elif isinstance(getattr(defaults, key), float):
                out[key] = float(value)
            else:
                out[key] = value
        except ValueError:
            raise ValueError(f"bad value in bio dataset option {part!r} (expected the type of BioConfig.{key})") from None
    return out


def options_from_env() -> dict[str, Any]:
    """Options set by ``$GNNPRETRAIN_BIO_OPTIONS`` (empty when unset)."""
    import os

    return parse_options(os.environ.get(OPTIONS_ENV))


def load_named(name: str, root=None, cache=None, **extra: Any) -> "BioEgoNetworks":
    """``"string_human"`` or ``"string_human:key=value,..."`` → dataset; env options apply first."""
    base, _, opts = name.partition(":")
    if base != "string_human":
        raise ValueError(f"unknown bio dataset {name!r}: expected 'string_human' or 'string_human:key=value,...'")
    kwargs = {**options_from_env(), **parse_options(opts), **extra}
    return BioEgoNetworks(root, cache, **kwargs)


def format_summary(summary: dict[str, Any], task_names: Sequence[str] | None = None) -> str:
    """Human-readable report of a built dataset (what `python -m gnnpretrain.bio.dataset` prints)."""
    lines = [
        f"graphs: {summary['graphs']} (network: {summary['proteins_in_network']} proteins, {summary['ppi_edges_in_network']} edges, species {summary['species']})",
        f"mean nodes per graph: {summary['mean_nodes']:.2f} (max {summary['max_nodes']})",
        f"mean edges per graph: {summary['mean_edges_undirected']:.2f} undirected ({summary['mean_edges_directed']:.2f} directed)",
        f"downstream tasks: {summary['tasks']}; coarse pre-training tasks: {summary['coarse_tasks']}",
        f"labelled graphs: {summary['labelled_graphs']}; unlabelled pool: {summary['unlabelled_pool']}",
        f"split sizes: {summary['split_sizes']}",
        f"absent edge channels (all zero): {summary['absent_channels'] or 'none'}",
        f"channel frequency: {summary['channel_frequency']}",
        "positives per task:",
    ]
    for i, (t, p) in enumerate(summary["positives_per_task"].items()):
        name = f" {task_names[i]}" if task_names else ""
        lines.append(f"  {t}{name}: {p}")
    lines.append(f"build time: {summary['build_seconds']} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Build (or load) the protein ego-network dataset and print its summary.")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--ppi", nargs="*", default=None, help="STRING edge file(s); default: shipped STRING v12 human")
    ap.add_argument("--annotations", default=None)
    ap.add_argument("--radius", type=int, default=2)
    ap.add_argument("--max-neighbors", type=int, default=10)
    ap.add_argument("--max-nodes", type=int, default=None)
    ap.add_argument("--min-positives", type=int, default=100)
    ap.add_argument("--max-centres", type=int, default=None)
    args = ap.parse_args(argv)
    ds = BioEgoNetworks(args.data_root, args.cache, ppi=args.ppi, annotations=args.annotations, radius=args.radius,
                        max_neighbors=args.max_neighbors, max_nodes=args.max_nodes,
                        min_positives=args.min_positives, max_centres=args.max_centres)
    print(f"cache: {ds.processed_dir}")
    print(format_summary(ds.summary(), ds.meta["downstream_task_names"]))


if __name__ == "__main__":
    # Run the importable module's main(), not this __main__ copy: the processed file pickles the
    # EgoData class by its module path, which must be gnnpretrain.bio.dataset to load elsewhere.
    from gnnpretrain.bio.dataset import main as _main

    _main()
