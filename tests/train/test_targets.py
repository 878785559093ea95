"""Targets that cannot be learned are one line before any training (issue 21), for every task source.

Real molecules (BACE's SMILES, featurized by RDKit) with target columns a user could bring: a 1e300
column, a constant one, a binary one fed to regression, a column constant only on the training split,
a classification column with one class on the training split. The same checks hold for MoleculeACE
files and for any registered domain; learnable columns still train.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gnnpretrain.errors import UserError
from gnnpretrain.train.objectives import MAX_TARGET_MAGNITUDE, UnlearnableTargetError
from gnnpretrain.train.tasks import Task, get_task

REPO = Path(__file__).resolve().parents[2]
N = 60


@pytest.fixture(scope="module")
def smiles(data_dir) -> list[str]:
    return pd.read_csv(data_dir / "moleculenet" / "bace.csv")["mol"].iloc[:N].tolist()


def _csv(path: Path, smiles: list[str], **columns) -> Path:
    pd.DataFrame({"smiles": smiles, **columns}).to_csv(path, index=False)
    return path


def _split(n_train: int = 40, n_valid: int = 10) -> list[str]:
    return ["train"] * n_train + ["valid"] * n_valid + ["test"] * (N - n_train - n_valid)


RNG = np.random.default_rng(0)
NORMAL = RNG.normal(size=N)

CASES = {
    # column values, extra get_task options, message
    "huge": ([1e300 * (1 + i) for i in range(N)], {}, r"'huge' holds magnitudes up to 6e\+301, beyond ±1\.8e\+19.*log10"),
    "beyond_float32_squares": (list(NORMAL * 1e20), {}, r"beyond ±1\.8e\+19"),
    "constant": ([5.0] * N, {}, r"'constant' is constant on the training split \(all 48 values are 5\).*--target-columns"),
    "binary_as_regression": ([0.0, 3.0] * (N // 2), {}, r"takes only 2 distinct values on the training split \(0, 3\)"),
    "constant_on_train_only": ([1.0] * 40 + list(NORMAL[40:]), {"split": "column:part"},
                               r"is constant on the training split \(all 40 values are 1\)"),
    "no_train_values": ([np.nan] * 40 + list(NORMAL[40:]), {"split": "column:part"},
                        r"has no value on the training split"),
    "one_class_on_train": ([0] * 40 + [0, 1] * 10, {"split": "column:part", "task_type": "classification"},
                           r"has a single class on the training split \(all 40 labels are 0\).*--split"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_unlearnable_csv_column_is_one_line(tmp_path, smiles, name):
    values, options, message = CASES[name]
    # a second, good column keeps the rows whose first column is empty (rows without any target are dropped)
    path = _csv(tmp_path / "mols.csv", smiles, **{name: values, "good": NORMAL, "part": _split()})
    columns = [name, "good"] if name == "no_train_values" else [name]
    with pytest.raises(UnlearnableTargetError, match=message) as err:
        get_task("chem", str(path), target_columns=columns, **options)
    assert isinstance(err.value, UserError) and "\n" not in str(err.value) and str(path) in str(err.value)


def test_one_bad_column_among_good_ones_is_named(tmp_path, smiles):
    path = _csv(tmp_path / "mols.csv", smiles, good=NORMAL, flat=[2.5] * N, other=NORMAL ** 2)
    with pytest.raises(UnlearnableTargetError, match=r"target column 'flat' is constant"):
        get_task("chem", str(path), target_columns=["good", "flat", "other"])
    task = get_task("chem", str(path), target_columns=["good", "other"])  # the learnable ones train
    assert task.task_type == "regression" and task.num_tasks == 2
    # a classification column with one class on train, next to a good one: named too (the user chose it)
    part = _split()
    path = _csv(tmp_path / "cls.csv", smiles, a=[i % 2 for i in range(N)], b=[0] * 40 + [0, 1] * 10, part=part)
    with pytest.raises(UnlearnableTargetError, match=r"target column 'b' has a single class"):
        get_task("chem", str(path), target_columns=["a", "b"], split="column:part")


def test_just_below_the_limits_still_trains(tmp_path, smiles):
    from gnnpretrain.train.finetune import FinetuneConfig, finetune_seed

    big = NORMAL * MAX_TARGET_MAGNITUDE / 10
    path = _csv(tmp_path / "mols.csv", smiles, big=big, three=[0.0, 1.0, 2.0] * (N // 3))
    for column in ("big", "three"):
        task = get_task("chem", str(path), target_columns=[column])
        cfg = FinetuneConfig(dataset=str(path), target_columns=[column], num_layer=2, emb_dim=8, epochs=1, seeds=[0],
                             progress=False)
        rec = finetune_seed(task, 0, cfg, "cpu")
        assert np.isfinite(rec["best_valid"]["test_rmse"]) and np.isfinite(rec["curve"][0]["train_loss"])


@pytest.mark.parametrize("name", ["huge", "constant"])
def test_finetune_script_refuses_before_training(tmp_path, run_script, smiles, name):
    """Today's failures: 1e300 died with 'FloatingPointError ... lower --lr', a constant column reported an RMSE."""
    values, _, message = CASES[name]
    path = _csv(tmp_path / "mols.csv", smiles, **{name: values})
    out = tmp_path / "ft"
    res = run_script("finetune", "--dataset", str(path), "--target-columns", name, "--epochs", "2", "--seeds", "0",
                     "--num-layer", "2", "--emb-dim", "8", "--output", str(out), "--no-progress")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "lower --lr" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0]
    assert "RMSE" not in res.stdout and not list(out.rglob("seed*.json"))


def test_summary_line_names_a_csv_by_its_path(tmp_path, run_script, smiles):
    path = _csv(tmp_path / "mols.csv", smiles, y=NORMAL)
    res = run_script("finetune", "--dataset", str(path), "--target-columns", "y", "--epochs", "1", "--seeds", "0",
                     "--num-layer", "2", "--emb-dim", "8", "--output", str(tmp_path / "ft"), "--no-progress")
    assert res.returncode == 0, res.stderr
    line = next(ln for ln in res.stdout.splitlines() if "test RMSE" in ln)
    assert line.startswith(f"{path}: test RMSE") and "//" not in line.split(":")[0]
    from gnnpretrain.train.tasks import dataset_display

    assert dataset_display("chem", "bbbp") == "chem/bbbp" and dataset_display("chem", "moleculeace:X") == "chem/moleculeace:X"


def test_moleculeace_file_with_unlearnable_target(tmp_path, data_dir):
    src = data_dir / "moleculeace" / "CHEMBL2835_Ki.csv"
    if not src.is_file():
        pytest.skip("MoleculeACE data not found")
    root = tmp_path / "root"
    (root / "moleculeace").mkdir(parents=True)
    df = pd.read_csv(src)
    df.assign(y=-7.25).to_csv(root / "moleculeace" / "CHEMBL0_Ki.csv", index=False)
    with pytest.raises(UnlearnableTargetError, match=r"CHEMBL0_Ki\.csv: target column 'y' is constant .*-7\.25"):
        get_task("chem", "moleculeace:CHEMBL0_Ki", data_root=root)
    df.assign(y=df["y"].astype(str).where(df.index != 3, "about 7")).to_csv(root / "moleculeace" / "CHEMBL1_Ki.csv", index=False)
    with pytest.raises(ValueError, match=r"CHEMBL1_Ki\.csv: target columns must hold numbers .*'about 7'"):
        get_task("chem", "moleculeace:CHEMBL1_Ki", data_root=root)
    df.drop(columns=["cliff_mol"]).to_csv(root / "moleculeace" / "CHEMBL2_Ki.csv", index=False)
    with pytest.raises(ValueError, match=r"not a MoleculeACE file \(no column 'cliff_mol'"):
        get_task("chem", "moleculeace:CHEMBL2_Ki", data_root=root)


def test_every_domain_gets_the_check(smiles):
    """A domain registered by someone else (regression, or classification with one class everywhere)."""
    from gnnpretrain.chem import smiles_to_graph
    from gnnpretrain.train import tasks as registry

    graphs = [smiles_to_graph(s) for s in smiles[:30]]

    def loader(name, *, data_root, cache, split, featurizer, split_seed, **options):
        for g in graphs:
            g.y = torch.tensor([[3.0 if name == "flat" else 1.0, 0.0]])
        return Task(domain="toy21", name=name, dataset=graphs, train_idx=list(range(20)), valid_idx=list(range(20, 25)),
                    test_idx=list(range(25, 30)), num_tasks=2, task_type="regression" if name == "flat" else "classification",
                    info={"task_names": ["first", "second"]})

    registry.register_task_loader("toy21", loader, names=["flat", "oneclass"])
    try:
        with pytest.raises(UnlearnableTargetError, match=r"toy21/flat: target column 'first' is constant .*\(and 1 more"):
            get_task("toy21", "flat")
        with pytest.raises(UnlearnableTargetError, match=r"toy21/oneclass: target column 'first' has a single class"):
            get_task("toy21", "oneclass")
    finally:
        registry._LOADERS.pop("toy21")
        registry._NAMES.pop("toy21", None)


def test_task_registry_imports_no_domain_and_hub_no_private_names():
    """The import circle csvtask <-> tasks is gone: the registry imports no chem module (the CSV family
    registers itself), and no module imports another's underscore names from the checkpoint reader."""
    tree = ast.parse((REPO / "gnnpretrain" / "train" / "tasks.py").read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m.startswith("gnnpretrain.chem") or m.startswith("gnnpretrain.bio")]
    code = ("import sys, gnnpretrain.train.tasks as t; assert 'gnnpretrain.chem.csvtask' not in sys.modules; "
            "t.get_task; print(t.accepts_dataset('chem', 'x.csv'), 'gnnpretrain.chem.csvtask' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0 and out.stdout.split() == ["True", "True"], out.stderr[-1000:]
    hub_tree = ast.parse((REPO / "gnnpretrain" / "hub.py").read_text())
    private = [a.name for n in ast.walk(hub_tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("gnnpretrain")
               for a in n.names if a.name.startswith("_")]
    assert private == []
