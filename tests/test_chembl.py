"""ChEMBL supervised pre-training data: binarization, conflicts, task filter, downstream exclusion.

Everything runs on real rows of DeepChem's ChEMBL subset and real BBBP molecules, written into small
temporary files so that each test processes a few hundred molecules, not 85K.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from rdkit import Chem

from gnnpretrain.chem.chembl import ChEMBL, binarize, build_label_matrix, inchikey, read_long


@pytest.fixture(scope="module")
def chembl_rows(data_dir) -> pd.DataFrame:
    """The first 400 real rows of chembl_5thresh (SMILES + 691 activity columns)."""
    return pd.read_csv(data_dir / "chembl" / "chembl_5thresh.csv.gz", nrows=400)


@pytest.fixture(scope="module")
def chembl_long(tmp_path_factory, chembl_rows):
    """Those rows as long records, with their InChIKeys computed once (RDKit is the slow part)."""
    path = tmp_path_factory.mktemp("rows") / "rows.csv"
    chembl_rows.to_csv(path, index=False)
    records, order = read_long([path])
    keys = {s: inchikey(s) for s in records["smiles"].unique()}
    return records, order, keys


def test_threshold_binarization_matches_raw_values(chembl_rows, chembl_long):
    records, order, keys = chembl_long
    smiles, tasks, y, stats = build_label_matrix(
        records, order, active_threshold=6.0, min_actives=1, min_inactives=1, keys=keys
    )
    assert stats["label_format"] == "activity"
    assert y.shape == (len(smiles), len(tasks)) and len(tasks) > 0
    assert set(np.unique(y[~np.isnan(y)])) <= {0.0, 1.0}
    # every label equals (raw value >= 6) for the molecules with a single measurement
    single = chembl_rows.drop_duplicates("smiles", keep=False).set_index("smiles")
    row_of = {s: i for i, s in enumerate(smiles)}
    checked = 0
    for s in [s for s in smiles if s in single.index][:100]:
        raw = single.loc[s, tasks].to_numpy(dtype=float)
        got = y[row_of[s]]
        assert np.array_equal(np.isnan(raw), np.isnan(got)), s
        m = ~np.isnan(raw)
        assert np.array_equal(got[m], (raw[m] >= 6.0).astype(np.float32)), s
        checked += int(m.sum())
    assert checked > 50
    # a value exactly at the threshold is active
    assert binarize(np.array([5.99, 6.0, np.nan]), "activity", 6.0).tolist()[:2] == [0.0, 1.0]
    # a higher threshold can only turn actives into inactives
    _, tasks7, y7, _ = build_label_matrix(records, order, active_threshold=7.0, min_actives=0, min_inactives=0, keys=keys)
    _, tasks6, y6, _ = build_label_matrix(records, order, active_threshold=6.0, min_actives=0, min_inactives=0, keys=keys)
    assert tasks6 == tasks7
    assert np.nansum(y7) < np.nansum(y6)
    assert (~np.isnan(y7)).sum() == (~np.isnan(y6)).sum()


def test_task_filter_keeps_exactly_tasks_with_enough_of_both_classes(chembl_long):
    records, order, keys = chembl_long
    _, all_tasks, y_all, _ = build_label_matrix(records, order, min_actives=0, min_inactives=0, keys=keys)
    act = np.nansum(y_all, axis=0)
    ina = (~np.isnan(y_all)).sum(0) - act
    expected = [t for t, a, i in zip(all_tasks, act, ina) if a >= 5 and i >= 3]
    _, tasks, y, stats = build_label_matrix(records, order, min_actives=5, min_inactives=3, keys=keys)
    assert tasks == expected and 0 < len(tasks) < len(all_tasks)
    assert stats["tasks_kept"] == len(tasks)
    assert (np.nansum(y, axis=0) >= 5).all()
    assert (((~np.isnan(y)).sum(0) - np.nansum(y, axis=0)) >= 3).all()
    # molecules left without any label are dropped
    assert (~np.isnan(y)).any(axis=1).all()


def test_duplicates_merge_by_inchikey_and_conflicts_average(tmp_path, chembl_rows):
    real = chembl_rows["smiles"].iloc[0]
    mol = Chem.MolFromSmiles(real)
    other_spelling = Chem.MolToSmiles(mol, doRandom=True, canonical=False)
    assert other_spelling != real and inchikey(other_spelling) == inchikey(real)
    pd.DataFrame({"smiles": [real, "CCO"], "T1": [5.8, 7.0], "T2": [6.5, 4.0]}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"smiles": [other_spelling, "OCC"], "T1": [6.4, 7.2], "T2": [5.0, None]}).to_csv(tmp_path / "b.csv", index=False)
    records, order = read_long([tmp_path / "a.csv", tmp_path / "b.csv"])
    smiles, tasks, y, stats = build_label_matrix(records, order, min_actives=0, min_inactives=0)
    assert len(smiles) == 2 and smiles[0] == real  # first spelling kept
    assert stats["conflicting_pairs"] == 3
    # T1: mean(5.8, 6.4) = 6.1 -> active; T2: mean(6.5, 5.0) = 5.75 -> inactive
    assert y[0].tolist() == [1.0, 0.0]
    assert y[1].tolist() == [1.0, 0.0]


def test_binary_and_reference_label_formats(tmp_path):
    pd.DataFrame({"smiles": ["CCO", "CCN", "CCC", "c1ccccc1"], "A": [1, 0, None, 1], "B": [0, 1, 1, None]}).to_csv(
        tmp_path / "bin.csv", index=False
    )
    rec, order = read_long([tmp_path / "bin.csv"])
    _, tasks, y, stats = build_label_matrix(rec, order, min_actives=1, min_inactives=1)
    assert stats["label_format"] == "binary" and tasks == ["A", "B"]
    assert y[:, 0].tolist()[:2] == [1.0, 0.0]
    pd.DataFrame({"smiles": ["CCO", "CCN", "CCC"], "A": [1, -1, 0]}).to_csv(tmp_path / "ref.csv", index=False)
    rec, order = read_long([tmp_path / "ref.csv"])
    smiles, _, y, stats = build_label_matrix(rec, order, min_actives=1, min_inactives=1)
    assert stats["label_format"] == "reference"
    assert len(smiles) == 2 and y[:, 0].tolist() == [1.0, 0.0]  # 0 = missing, its molecule dropped
    with pytest.raises(ValueError, match="0/1/empty"):
        binarize(np.array([0.0, 6.5]), "binary", 6.0)


@pytest.fixture(scope="module")
def planted_root(tmp_path_factory, data_dir):
    """A data root with 120 real BBBP molecules and a ChEMBL CSV holding one of BBBP's test molecules."""
    from gnnpretrain.chem.moleculenet import MoleculeNet
    from gnnpretrain.splits import split_dataset

    root = tmp_path_factory.mktemp("root")
    cache = tmp_path_factory.mktemp("cache")
    (root / "moleculenet").mkdir()
    pd.read_csv(data_dir / "moleculenet" / "bbbp.csv", nrows=120).to_csv(root / "moleculenet" / "bbbp.csv", index=False)
    ds = MoleculeNet(root=root, name="bbbp", cache=cache, download=False)
    test_idx = split_dataset(ds, method="scaffold", seed=0)[2]
    planted = ds.smiles[int(test_idx[0])]
    spelled = Chem.MolToSmiles(Chem.MolFromSmiles(planted), doRandom=True, canonical=False)
    rows = pd.read_csv(data_dir / "chembl" / "chembl_5thresh.csv.gz", nrows=150)
    task = rows.columns[1 + int(rows.iloc[:, 1:].notna().sum().argmax())]  # the best-covered target
    extra = pd.DataFrame([{"smiles": spelled, task: 8.0}])
    (root / "chembl").mkdir()
    pd.concat([rows, extra], ignore_index=True).to_csv(root / "chembl" / "mine.csv", index=False)
    return root, cache, planted


def test_downstream_test_molecule_is_removed(planted_root):
    root, cache, planted = planted_root
    key = inchikey(planted)
    common = dict(root=root, cache=cache, path=root / "chembl" / "mine.csv", min_actives=1, min_inactives=1,
                  downstream_datasets=("bbbp",))
    kept = ChEMBL(exclude_downstream=False, **common)
    assert key in {inchikey(s) for s in kept.smiles}
    filtered = ChEMBL(exclude_downstream=True, **common)
    assert key not in {inchikey(s) for s in filtered.smiles}
    assert filtered.stats["removed_downstream_molecules"] >= 1
    assert filtered.stats["removed_downstream_by_dataset"]["bbbp"] >= 1
    assert len(filtered) == len(kept) - filtered.stats["removed_downstream_molecules"]
    # the InMemoryDataset contract: y float [1, T] with 0/1/nan, aligned with .smiles
    g = filtered[0]
    assert g.y.dtype == torch.float32 and g.y.shape == (1, filtered.num_tasks)
    assert g.x.dtype == torch.long and g.x.shape[1] == 2
    assert set(torch.unique(filtered._data.y[~torch.isnan(filtered._data.y)]).tolist()) <= {0.0, 1.0}
    # cached: a second construction reads the processed file (same stats, no reprocessing)
    again = ChEMBL(exclude_downstream=True, **common)
    assert again.stats == filtered.stats and again.smiles == filtered.smiles


def test_bad_inputs_have_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ChEMBL(path=tmp_path / "nope.csv", cache=tmp_path)
    with pytest.raises(ValueError, match="label_format"):
        ChEMBL(path=tmp_path, cache=tmp_path, label_format="percent")
    pd.DataFrame({"name": ["x"], "A": [1]}).to_csv(tmp_path / "nosmiles.csv", index=False)
    with pytest.raises(ValueError, match="no SMILES column"):
        read_long([tmp_path / "nosmiles.csv"])
    assert math.isnan(binarize(np.array([np.nan]), "activity", 6.0)[0])
