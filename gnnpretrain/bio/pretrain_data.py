"""Bio pre-training datasets for ``scripts/pretrain.py --domain bio --dataset NAME``.

* ``string_human``: every ego-network of the STRING v12 human dataset (labelled and unlabelled; no
  labels are used), as the paper pre-trains self-supervised strategies on all graphs.
* ``string_human_supervised``: the labelled graphs whose labels supervised pre-training may use
  (``split["supervised_pretrain"]``: train + valid, never the reported test proteins), with the
  coarse GO terms as targets (``num_tasks`` = number of coarse terms).
* a folder path: the paper's processed bio dataset (``<path>/processed/geometric_data_processed.pt``,
  see :mod:`gnnpretrain.bio.paper`).

``--max-molecules N`` keeps the first N graphs (in protein order) — for quick runs. Dataset options
(``BioConfig`` fields) come from ``$GNNPRETRAIN_BIO_OPTIONS`` (e.g. ``max_centres=3000``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gnnpretrain.train.pretrain_data import PATH_KEY, register_pretrain_dataset


def _limit(ds, max_graphs):
    if max_graphs is not None and max_graphs < len(ds):
        sub = ds[: int(max_graphs)]
        for attr in ("meta", "split", "task_names", "num_tasks", "num_pretrain_tasks", "protein_ids"):
            if hasattr(ds, attr):
                setattr(sub, attr, getattr(ds, attr))
        return sub
    return ds


def _reject_chem_options(name, smiles_column, featurizer, options):
    if smiles_column is not None:
        raise ValueError(f"--smiles-column does not apply to the bio dataset {name!r}")
    if options:
        raise TypeError(f"bio dataset {name!r} takes no options {sorted(options)}")


@register_pretrain_dataset("string_human", "bio")
def _string_human(name, *, data_root=None, cache=None, max_molecules=None, smiles_column=None,
                  featurizer="reference", num_workers=None, **options):
    from gnnpretrain.bio.dataset import load_named

    _reject_chem_options(name, smiles_column, featurizer, options)
    return _limit(load_named("string_human", data_root, cache), max_molecules)


@register_pretrain_dataset("string_human_supervised", "bio")
def _string_human_supervised(name, *, data_root=None, cache=None, max_molecules=None, smiles_column=None,
                             featurizer="reference", num_workers=None, **options):
    from gnnpretrain.bio.dataset import load_named

    _reject_chem_options(name, smiles_column, featurizer, options)
    full = load_named("string_human", data_root, cache)
    idx = full.split["supervised_pretrain"]
    if max_molecules is not None:
        idx = idx[: int(max_molecules)]
    ds = full.index_select(idx)
    ds.num_tasks = full.num_pretrain_tasks  # what the supervised strategy's head predicts
    ds.meta = full.meta
    return ds


@register_pretrain_dataset(PATH_KEY, "bio")
def _paper_folder(name, *, data_root=None, cache=None, max_molecules=None, smiles_column=None,
                  featurizer="reference", num_workers=None, **options):
    from gnnpretrain.bio.paper import PaperBioDataset

    _reject_chem_options(name, smiles_column, featurizer, options)
    ds = PaperBioDataset(Path(name))
    return _limit(ds, max_molecules)
