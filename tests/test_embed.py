"""gnnpretrain.embed / MoleculeEmbedder / scripts/embed.py on real molecules and real checkpoints."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.nn import global_max_pool

import gnnpretrain
from gnnpretrain.chem.featurize import smiles_to_graph
from gnnpretrain.nn import GNN
from gnnpretrain.paths import checkpoints_root

SHARED_GCN = checkpoints_root() / "chem" / "gcn_supervised_contextpred.pth"
SMILES = ["CCO", "c1ccccc1O", "not a smiles", "CC(=O)Nc1ccc(O)cc1", "[Na+].[Cl-]", "C"]


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return GNN(num_layer=2, emb_dim=16, gnn_type="gin", drop_ratio=0.3)


def test_embed_equals_mean_pooled_encoder_output(encoder):
    encoder.train()  # embed must switch to eval (dropout off) and restore the mode afterwards
    arr, failed = gnnpretrain.embed(SMILES, encoder, batch_size=2)
    assert encoder.training
    assert failed == [2] and arr.shape == (len(SMILES), 16) and np.isnan(arr[2]).all()
    encoder.eval()
    with torch.no_grad():
        for i, s in enumerate(SMILES):
            if i in failed:
                continue
            g = smiles_to_graph(s)
            expected = encoder(g.x, g.edge_index, g.edge_attr).mean(0).numpy()
            np.testing.assert_allclose(arr[i], expected, rtol=1e-5, atol=1e-6)
    # batch size changes nothing; max pooling is the per-molecule max
    arr_big, _ = gnnpretrain.embed(SMILES, encoder, batch_size=64)
    np.testing.assert_allclose(arr_big, arr, rtol=1e-5, atol=1e-6, equal_nan=True)
    mx, _ = gnnpretrain.embed(SMILES[:2], encoder, pooling="max")
    b = Batch.from_data_list([smiles_to_graph(s) for s in SMILES[:2]])
    with torch.no_grad():
        ref = global_max_pool(encoder(b.x, b.edge_index, b.edge_attr), b.batch).numpy()
    np.testing.assert_allclose(mx, ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pooling"):
        gnnpretrain.embed(SMILES, encoder, pooling="median")


@pytest.mark.skipif(not SHARED_GCN.is_file(), reason="reference checkpoints not found")
def test_embed_by_hub_name_and_path_agree():
    by_name, _ = gnnpretrain.embed(SMILES[:2], "gcn_supervised_contextpred")
    by_path, _ = gnnpretrain.embed(SMILES[:2], SHARED_GCN)
    assert by_name.shape == (2, 300)
    np.testing.assert_array_equal(by_name, by_path)


def test_sklearn_transformer_in_a_pipeline(encoder, data_dir):
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    df = pd.read_csv(data_dir / "moleculenet" / "bbbp.csv").iloc[:300]
    ok = [smiles_to_graph(s) is not None for s in df["smiles"]]
    df = df[ok]
    pipe = make_pipeline(gnnpretrain.MoleculeEmbedder(model=encoder), LogisticRegression(max_iter=2000))
    pipe.fit(df["smiles"].iloc[:200], df["p_np"].iloc[:200])
    proba = pipe.predict_proba(df["smiles"].iloc[200:])
    assert proba.shape == (len(df) - 200, 2)
    names = pipe[0].get_feature_names_out()
    assert list(names[:2]) == ["emb0", "emb1"] and len(names) == 16
    clone(pipe)  # sklearn's parameter contract holds
    emb = gnnpretrain.MoleculeEmbedder(model=encoder).fit()
    with pytest.raises(ValueError, match="could not be featurized"):
        emb.transform(SMILES)
    assert np.isnan(gnnpretrain.MoleculeEmbedder(model=encoder, on_error="nan").fit().transform(SMILES)[2]).all()


def test_embed_script(tmp_path, run_script):
    csv = tmp_path / "mols.csv"
    pd.DataFrame({"name": list("abcdef"), "smi": SMILES}).to_csv(csv, index=False)
    out = tmp_path / "emb.npy"
    res = run_script("embed", "--input", str(csv), "--smiles-column", "smi", "--model", "gcn_supervised_contextpred",
               "--output", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr
    arr = np.load(out)
    direct, failed = gnnpretrain.embed(SMILES, "gcn_supervised_contextpred")
    np.testing.assert_array_equal(arr, direct)
    assert "1 of 6" in res.stdout
    failed_file = tmp_path / "emb.failed.csv"
    assert pd.read_csv(failed_file)["smiles"].tolist() == ["not a smiles"]
    bad = run_script("embed", "--input", str(csv), "--smiles-column", "SMILES", "--model", "gcn_supervised_contextpred", "--output", str(out))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "'SMILES'" in bad.stderr and "'name', 'smi'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
