"""MoleculeNet datasets: the 8 real files (processed once into the default cache), the official
layouts written to tmp_path, the offline/download behaviour and every bad-input error."""

from __future__ import annotations

import gzip
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.loader import DataLoader

from gnnpretrain.chem import MOLECULENET_NAMES, MoleculeNet, smiles_to_graph
from gnnpretrain.chem import download as dl
from gnnpretrain.chem.moleculenet import find_raw_file

# Molecules kept under today's RDKit (2026.09) from the cleaned files in <data_root>/moleculenet:
# Tox21 loses 8 and HIV 7 SMILES RDKit no longer parses; ClinTox loses the one molecule with a
# dummy atom '*' (atomic number 0, which the reference vocabulary cannot encode).
EXPECTED = {
    "bbbp": (2039, 1, 0),
    "tox21": (7823, 12, 8),
    "toxcast": (8576, 617, 0),
    "sider": (1427, 27, 0),
    "clintox": (1477, 2, 1),
    "muv": (93087, 17, 0),
    "hiv": (41120, 1, 7),
    "bace": (1513, 1, 0),
}


@pytest.fixture(scope="module")
def datasets(data_dir, cache):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skip warnings are tested on tmp files below
        return {name: MoleculeNet(data_dir, name, cache=cache) for name in MOLECULENET_NAMES}


@pytest.mark.parametrize("name", MOLECULENET_NAMES)
def test_real_dataset_counts_and_contract(datasets, name):
    ds = datasets[name]
    n, t, skipped = EXPECTED[name]
    assert len(ds) == n and ds.num_tasks == t and len(ds.task_names) == t
    assert ds.num_skipped == skipped and ds.num_raw == n + skipped
    assert len(ds.smiles) == n and len(ds.rows) == n
    store = ds._data
    # every index inside the reference embedding tables
    assert store.x.dtype == torch.long and store.x.shape[1] == 2
    assert 0 <= int(store.x[:, 0].min()) and int(store.x[:, 0].max()) < 118
    assert 0 <= int(store.x[:, 1].min()) and int(store.x[:, 1].max()) < 3
    assert int(store.edge_attr[:, 0].max()) < 4 and int(store.edge_attr[:, 1].max()) < 3
    y = store.y
    assert y.dtype == torch.float32 and y.shape == (n, t)
    vals = y[~torch.isnan(y)]
    assert set(torch.unique(vals).tolist()) <= {0.0, 1.0}
    g = ds[n // 2]
    assert g.y.shape == (1, t) and g.edge_index.max() < g.num_nodes


@pytest.mark.parametrize("name", ["tox21", "clintox", "hiv"])
def test_graphs_and_labels_stay_aligned_after_skips(datasets, data_dir, name):
    ds = datasets[name]
    raw = pd.read_csv(find_raw_file(name, data_dir, download=False))
    smiles_col = "smiles"
    rng = np.random.default_rng(0)
    for i in [0, len(ds) - 1, *rng.integers(0, len(ds), 20).tolist()]:
        row = int(ds.rows[i])
        assert ds.smiles[i] == raw[smiles_col].iloc[row]
        expected = smiles_to_graph(ds.smiles[i])
        got = ds[i]
        assert torch.equal(got.x, expected.x) and torch.equal(got.edge_index, expected.edge_index)
        assert torch.equal(got.edge_attr, expected.edge_attr)
        labels = raw[ds.task_names].iloc[row].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(labels), torch.isnan(got.y[0]).numpy())
        assert np.allclose(np.nan_to_num(labels, nan=-1), torch.nan_to_num(got.y[0], nan=-1).numpy())


def test_skipped_rows_are_the_unparseable_ones(datasets):
    assert len(datasets["tox21"].unparsable_rows) == 8 and datasets["tox21"].unsupported_rows == []
    assert len(datasets["hiv"].unparsable_rows) == 7
    assert datasets["clintox"].unsupported_rows == [0]  # '*C(=O)[C@H](CCCCNC(=O)OCCOC)NC(=O)OCCOC'


def test_batches_have_label_matrix(datasets):
    loader = DataLoader(datasets["tox21"], batch_size=32, shuffle=False)
    batch = next(iter(loader))
    assert batch.y.shape == (32, 12) and batch.x.shape[1] == 2
    sub = datasets["bbbp"][torch.tensor([3, 1, 4])]
    assert len(sub) == 3 and torch.equal(sub[0].x, datasets["bbbp"][3].x)


def test_subsets_keep_smiles_aligned(datasets):
    ds = datasets["bbbp"]
    idx = torch.tensor([10, 3, 2000])
    sub = ds[idx]
    assert sub.smiles == [ds.smiles[10], ds.smiles[3], ds.smiles[2000]]
    assert sub.rows.tolist() == [10, 3, 2000]
    assert torch.equal(sub[1].x, smiles_to_graph(sub.smiles[1]).x)
    assert ds[5:8].smiles == ds.smiles[5:8]


def test_parallel_processing_equals_serial(tmp_path, data_dir, monkeypatch):
    from gnnpretrain.chem import moleculenet as mn

    monkeypatch.setattr(mn, "_CHUNK", 40)  # several chunks from a small file
    (tmp_path / "moleculenet").mkdir()
    pd.read_csv(data_dir / "moleculenet" / "tox21.csv").head(200).to_csv(tmp_path / "moleculenet" / "tox21.csv", index=False)
    path = tmp_path / "moleculenet" / "tox21.csv"
    serial = mn.build("tox21", path, num_workers=0, progress=False)
    parallel = mn.build("tox21", path, num_workers=2, progress=True)
    assert serial["smiles"] == parallel["smiles"] and len(serial["smiles"]) == 200
    for key in ("x", "edge_index", "edge_attr", "n_nodes", "n_edges", "rows"):
        assert torch.equal(serial[key], parallel[key]), key
    assert torch.equal(serial["y"].nan_to_num(-1), parallel["y"].nan_to_num(-1))


def test_second_load_uses_the_cache(datasets, data_dir, cache):
    ds = datasets["bace"]
    path = ds.processed_path
    assert path.is_file() and path.parent.is_relative_to(cache)
    assert "reference" in path.name and "-v" in path.name
    mtime = path.stat().st_mtime_ns
    again = MoleculeNet(data_dir, "BACE", cache=cache)
    assert again.processed_path == path and path.stat().st_mtime_ns == mtime
    assert again.smiles == ds.smiles and torch.equal(again._data.x, ds._data.x)


# ---------------------------------------------------------------- tmp-file tests (official layouts)

BBBP_OFFICIAL = """num,name,p_np,smiles
1,Propanolol,1,[Cl].CC(C)NCC(O)COc1cccc2ccccc12
2,Terbutylchlorambucil,1,C(=O)(OC(C)(C)C)CCCc1ccc(cc1)N(CCCl)CCCl
3,broken,1,C1CC(
4,40730,0,c1ccccc1C(=O)O
5,dummy,0,*CC
6,24,1,CCN(CC)CC.Cl
"""


def _write(root: Path, name: str, text: str, gz: bool = False) -> Path:
    folder = root / "moleculenet"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name + (".gz" if gz else ""))
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_official_bbbp_layout_skips_bad_rows_with_one_warning(tmp_path):
    _write(tmp_path / "data", "BBBP.csv", BBBP_OFFICIAL)
    with pytest.warns(UserWarning, match=r"'bbbp': skipped 2 of 6 .*1 SMILES that RDKit cannot parse, 1 that") as rec:
        ds = MoleculeNet(tmp_path / "data", "bbbp", cache=tmp_path / "cache", download=False)
    assert len([w for w in rec if "skipped" in str(w.message)]) == 1
    assert len(ds) == 4 and ds.rows.tolist() == [0, 1, 3, 5]
    assert ds.smiles[2] == "c1ccccc1C(=O)O"
    assert ds._data.y[:, 0].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert (tmp_path / "cache" / "moleculenet" / "bbbp").is_dir()


def test_official_tox21_layout_float_labels_reordered_gz(tmp_path):
    tasks = ["NR-AR", "NR-AR-LBD", "NR-AhR", "NR-Aromatase", "NR-ER", "NR-ER-LBD", "NR-PPAR-gamma",
             "SR-ARE", "SR-ATAD5", "SR-HSE", "SR-MMP", "SR-p53"]
    header = ["mol_id", "smiles"] + tasks[::-1]  # other column order, metadata column
    rows = [
        ["TOX1", "CCO"] + ["1.0", "0.0", ""] * 4,
        ["TOX2", "c1ccccc1O"] + ["", "0.0", "1.0"] * 4,
    ]
    text = ",".join(header) + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    _write(tmp_path, "tox21.csv", text, gz=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing skipped → no warning
        ds = MoleculeNet(tmp_path, "tox21", cache=tmp_path / "c", download=False)
    assert ds.task_names == tasks and len(ds) == 2
    y0 = ds[0].y[0]
    # reversed file order: SR-p53 is the first task column in the file
    assert y0[tasks.index("SR-p53")].item() == 1.0 and y0[tasks.index("SR-MMP")].item() == 0.0
    assert math.isnan(y0[tasks.index("SR-HSE")].item())


def test_bace_official_layout_with_descriptor_columns(tmp_path):
    text = "mol,CID,Class,Model,pIC50,MW\nCCO,BACE_1,1,Train,9.1,46.07\nCCN,BACE_2,0,Test,4.2,45.08\n"
    _write(tmp_path, "bace.csv", text)
    ds = MoleculeNet(tmp_path, "bace", cache=tmp_path / "c", download=False)
    assert ds.task_names == ["Class"] and ds._data.y[:, 0].tolist() == [1.0, 0.0]


def test_official_hiv_layout_via_env_data_root(tmp_path, monkeypatch):
    # official HIV.csv: smiles, activity (CI/CM/CA strings, not a task), HIV_active
    _write(tmp_path, "HIV.csv", "smiles,activity,HIV_active\nCCO,CI,0\nc1ccccc1N,CM,1\nC1CC,CI,0\n")
    monkeypatch.setenv("GNNPRETRAIN_DATA", str(tmp_path))
    with pytest.warns(UserWarning, match=r"'hiv': skipped 1 of 3"):
        ds = MoleculeNet(name="HIV", cache=tmp_path / "c", download=False)
    assert ds.raw_path == tmp_path / "moleculenet" / "HIV.csv"
    assert ds.task_names == ["HIV_active"] and ds._data.y[:, 0].tolist() == [0.0, 1.0]


def test_changed_raw_file_is_reprocessed(tmp_path):
    path = _write(tmp_path, "bace.csv", "mol,Class\nCCO,1\nCCN,0\n")
    a = MoleculeNet(tmp_path, "bace", cache=tmp_path / "c", download=False)
    path.write_text("mol,Class\nCCO,1\nCCN,0\nCCC,1\n")
    b = MoleculeNet(tmp_path, "bace", cache=tmp_path / "c", download=False)
    assert len(a) == 2 and len(b) == 3 and a.processed_path != b.processed_path
    assert not a.processed_path.exists()  # the stale file is removed


def test_ogb_featurizer_dataset_keeps_the_same_molecules(tmp_path, data_dir):
    (tmp_path / "moleculenet").mkdir()
    pd.read_csv(data_dir / "moleculenet" / "bace.csv").head(150).to_csv(tmp_path / "moleculenet" / "bace.csv", index=False)
    ref = MoleculeNet(tmp_path, "bace", cache=tmp_path / "c", download=False)
    ogb = MoleculeNet(tmp_path, "bace", featurizer="ogb", cache=tmp_path / "c", download=False)
    assert ogb.smiles == ref.smiles and "ogb" in ogb.processed_path.name
    assert ogb[0].x.shape[1] == 9 and ogb[0].edge_attr.shape[1] == 3
    assert torch.equal(ogb[7].x, smiles_to_graph(ogb.smiles[7], "ogb").x)


@pytest.mark.parametrize(
    "text, match",
    [
        ("molecule,Class\nCCO,1\n", r"no SMILES column \(expected one named smiles / mol, any case\)"),
        ("mol,Class\nCCO,1\nCCN,2\n", r"label column 'Class' has values other than 0, 1 or empty.*\['2'\]"),
        ("mol,Class\nCCO,active\nCCN,0\n", r"label column 'Class'.*\['active'\]"),
        ("mol,Label\nCCO,1\n", r"needs task columns \['Class'\]; missing \['Class'\]"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, text, match):
    _write(tmp_path, "bace.csv", text)
    with pytest.raises(ValueError, match=match):
        MoleculeNet(tmp_path, "bace", cache=tmp_path / "c", download=False)


def test_unknown_name_and_featurizer(tmp_path):
    with pytest.raises(ValueError, match=r"unknown MoleculeNet dataset 'esol'; expected one of bbbp"):
        MoleculeNet(tmp_path, "esol", cache=tmp_path / "c")
    with pytest.raises(ValueError, match="unknown featurizer"):
        MoleculeNet(tmp_path, "bbbp", featurizer="ecfp", cache=tmp_path / "c")


def test_missing_file_offline_names_path_and_url(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        MoleculeNet(tmp_path / "empty", "hiv", cache=tmp_path / "c", download=False)
    msg = str(err.value)
    # the README's name first, then the other names accepted (the official HIV.csv among them)
    assert f"{tmp_path / 'empty' / 'moleculenet' / 'hiv.csv'} (or hiv.csv.gz, HIV.csv" in msg
    assert "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/HIV.csv" in msg


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    def no_network(url, fh, timeout=60.0):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(dl, "_urlopen_to", no_network)
    with pytest.raises(FileNotFoundError, match=r"raw file not found: .*muv\.csv \(or muv\.csv\.gz\).*download .*muv\.csv\.gz failed.*unreachable"):
        MoleculeNet(tmp_path, "muv", cache=tmp_path / "c", download=True)
    assert not any((tmp_path / "moleculenet").iterdir())  # no partial file left


def test_download_verifies_checksum(tmp_path, monkeypatch):
    content = b"smiles,p_np,num,name\nCCO,1,1,a\nCCN,0,2,b\n"

    def fake(url, fh, timeout=60.0):
        assert url.endswith("/BBBP.csv")
        fh.write(content)

    monkeypatch.setattr(dl, "_urlopen_to", fake)
    good = dl.RemoteFile("BBBP.csv", dl.MOLECULENET_URL.format("BBBP.csv"),
                         sha256=__import__("hashlib").sha256(content).hexdigest(), size=len(content))
    monkeypatch.setitem(dl.MOLECULENET_FILES, "bbbp", good)
    ds = MoleculeNet(tmp_path / "ok", "bbbp", cache=tmp_path / "c", download=True)
    assert len(ds) == 2 and (tmp_path / "ok" / "moleculenet" / "BBBP.csv").read_bytes() == content

    bad = dl.RemoteFile("BBBP.csv", good.url, sha256="0" * 64)
    monkeypatch.setitem(dl.MOLECULENET_FILES, "bbbp", bad)
    with pytest.raises(dl.ChecksumError, match="sha256 mismatch"):
        MoleculeNet(tmp_path / "bad", "bbbp", cache=tmp_path / "c", download=True)
    assert not (tmp_path / "bad" / "moleculenet" / "BBBP.csv").exists()


def test_unknown_checksum_warns_with_the_computed_value(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "_urlopen_to", lambda url, fh, timeout=60.0: fh.write(b"smiles,p_np\nCCO,1\n"))
    with pytest.warns(UserWarning, match=r"no checksum is recorded"):
        dl.fetch(dl.MOLECULENET_FILES["bbbp"], tmp_path / "BBBP.csv")
