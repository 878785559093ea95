"""Corpus loading: real MOSES ZINC subset, cache reuse, user CSVs and their error messages."""

from __future__ import annotations

import gzip
import warnings

import pandas as pd
import pytest
import torch

import gnnpretrain.chem.corpus as corpus
from gnnpretrain.chem.corpus import load_corpus, subset_indices
from gnnpretrain.chem.featurize import smiles_to_graph
from gnnpretrain.data import GraphStore, GraphStoreLoader, extract_context


@pytest.fixture(scope="module")
def zinc_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus_cache")


@pytest.fixture(scope="module")
def zinc2000(data_dir, zinc_cache):
    return load_corpus("zinc", data_root=data_dir, cache=zinc_cache, max_molecules=2000, num_workers=2, progress=False)


def test_zinc_subset(zinc2000, data_dir):
    store = zinc2000
    assert isinstance(store, GraphStore) and len(store) == 2000  # every MOSES SMILES parses
    assert store.meta["num_rows"] == 1_936_962 and store.meta["num_skipped"] == 0
    rows = store.source_index
    assert torch.equal(rows, torch.from_numpy(subset_indices(1_936_962, 2000)))
    assert bool((rows[1:] > rows[:-1]).all()) and int(rows[-1]) > 1_584_663  # spread over all three files
    # graph i is the featurization of its source row
    train = pd.read_csv(data_dir / "zinc" / "moses_train.csv.gz", nrows=int(rows[3]) + 1)["SMILES"]
    ref = smiles_to_graph(train.iloc[int(rows[3])])
    got = store[3]
    assert torch.equal(got.x, ref.x) and torch.equal(got.edge_index, ref.edge_index)
    assert torch.equal(got.edge_attr, ref.edge_attr)
    # usable end to end
    batch = next(iter(GraphStoreLoader(store, 64, seed=0)))
    cp = extract_context(batch, generator=torch.Generator().manual_seed(0))
    assert cp.num_graphs + cp.num_dropped == 64 and cp.num_graphs > 0


def test_cache_reuse(zinc2000, data_dir, zinc_cache, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the cached corpus must not be featurized again")

    monkeypatch.setattr(corpus, "featurize_to_store", fail)
    again = load_corpus("zinc", data_root=data_dir, cache=zinc_cache, max_molecules=2000)
    assert len(again) == 2000 and "x" in again.memory_mapped
    assert torch.equal(again.collate(torch.arange(50)).x, zinc2000.collate(torch.arange(50)).x)
    assert len(list((zinc_cache / "corpus").iterdir())) == 1


def test_subset_is_deterministic_and_spread():
    a, b = subset_indices(1000, 100), subset_indices(1000, 100)
    assert (a == b).all() and len(set(a.tolist())) == 100 and a.max() > 800 and a.min() < 200
    assert (subset_indices(50, 100) == list(range(50))).all()


def _write_csv(path, header, rows, gz=False):
    text = header + "\n" + "\n".join(rows) + "\n"
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_user_csv_unparseable_counted(tmp_path):
    f = _write_csv(
        tmp_path / "mols.csv.gz", "id,Structure",
        ["a,CCO", "b,not_a_smiles", "c,c1ccccc1", "d,C1CC", "e,CC(=O)O", "f,"], gz=True,
    )
    with pytest.warns(UserWarning, match="skipped 3 of 6"):
        store = load_corpus(f, cache=tmp_path / "cache", smiles_column="Structure", num_workers=1, progress=False)
    assert len(store) == 3 and store.meta["num_skipped"] == 3
    assert store.source_index.tolist() == [0, 2, 4]
    assert store[1].x.size(0) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the cached load does not warn again
        load_corpus(f, cache=tmp_path / "cache", smiles_column="Structure", progress=False)


def test_user_csv_errors(tmp_path):
    f = _write_csv(tmp_path / "m.csv", "id,Structure", ["a,CCO"])
    with pytest.raises(ValueError, match=r"no SMILES column 'smiles'.*\['id', 'Structure'\]"):
        load_corpus(f, cache=tmp_path / "c", smiles_column="smiles", progress=False)
    with pytest.raises(ValueError, match=r"no SMILES column \(expected one named smiles.*\['id', 'Structure'\].*--smiles-column"):
        load_corpus(f, cache=tmp_path / "c", progress=False)
    bad = _write_csv(tmp_path / "bad.csv", "smiles", ["xyz", "C1CC"])
    with pytest.raises(ValueError, match="corpus is empty"):
        load_corpus(bad, cache=tmp_path / "c", num_workers=1, progress=False)
    assert not (tmp_path / "c" / "corpus").exists() or not any((tmp_path / "c" / "corpus").iterdir())
    with pytest.raises(FileNotFoundError, match="neither a known name"):
        load_corpus(tmp_path / "nope.csv", cache=tmp_path / "c")
    with pytest.raises(ValueError, match="max_molecules"):
        load_corpus(f, cache=tmp_path / "c", max_molecules=0)


def test_missing_zinc_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)ZINC pre-training corpus .* is not in .*moses_train\.csv\.gz  <-"):
        load_corpus("zinc", data_root=tmp_path, cache=tmp_path / "c", download=False)
    with pytest.raises(FileNotFoundError, match="zinc_standard_agent"):
        load_corpus("zinc_standard_agent", data_root=tmp_path, cache=tmp_path / "c")


def test_zinc_standard_agent_layout(tmp_path):
    raw = tmp_path / "zinc_standard_agent" / "raw"
    raw.mkdir(parents=True)
    _write_csv(raw / "zinc_combined_apr_8_2019.csv.gz", "smiles,zinc_id", ["CCO,ZINC1", "c1ccncc1,ZINC2"], gz=True)
    store = load_corpus("zinc_standard_agent", data_root=tmp_path, cache=tmp_path / "c", num_workers=1, progress=False)
    assert len(store) == 2 and store.meta["name"] == "zinc_standard_agent"
