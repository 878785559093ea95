"""Empty inputs are errors (scikit-learn's rule), and an unwritable output names the path the user gave.

Issue 21: ``scripts/embed.py`` on a CSV with a header and no rows wrote a (0, 300) array and exited 0,
and with every SMILES invalid it exited 0 as well; an output inside a folder that cannot be written
reported the name of a temporary file. Real files and the real published encoder throughout.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gnnpretrain
from gnnpretrain.errors import EmptyInputError, OutputNotWritableError, UserError

MODEL = "gcn_supervised_contextpred"


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a 0555 folder, or for root (whom permissions do
    not stop) sysfs, which refuses new files to everyone."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for folder in (locked, Path("/sys")):
        try:
            (folder / ".gnnpretrain-probe").write_text("")
        except OSError:
            return folder
        (folder / ".gnnpretrain-probe").unlink()
    pytest.skip("no folder here refuses new files to this user")


# ----------------------------------------------------------------------------------------- embed()
def test_embed_of_no_smiles_is_an_error():
    for empty in ([], np.array([], dtype=object), pd.Series([], dtype=object)):
        with pytest.raises(EmptyInputError, match="found 0 samples while a minimum of 1 is required"):
            gnnpretrain.embed(empty, MODEL)
    assert issubclass(EmptyInputError, UserError) and issubclass(EmptyInputError, ValueError)


def test_embed_with_every_smiles_invalid_is_an_error_listing_them():
    bad = ["not a smiles", "", "C1CC", "xyz"]
    with pytest.raises(EmptyInputError, match=r"none of the 4 SMILES could be featurized \(0: 'not a smiles', 1: '', "
                                              r"2: 'C1CC', 3: 'xyz'\)") as err:
        gnnpretrain.embed(bad, MODEL)
    assert err.value.failed == [0, 1, 2, 3]
    # one parseable molecule is enough: NaN rows for the others, as before
    emb, failed = gnnpretrain.embed(bad + ["CCO"], MODEL)
    assert failed == [0, 1, 2, 3] and np.isfinite(emb[4]).all() and np.isnan(emb[:4]).all()


def test_molecule_embedder_follows_scikit_learn_on_empty_input():
    est = gnnpretrain.MoleculeEmbedder(MODEL, on_error="nan")
    with pytest.raises(EmptyInputError, match="found 0 samples"):
        est.fit([])
    est.fit(["CCO"])
    with pytest.raises(EmptyInputError, match="found 0 samples"):
        est.transform([])
    with pytest.raises(EmptyInputError, match="none of the 2 SMILES"):  # even with on_error="nan"
        est.transform(["xx", "yy"])
    assert est.transform(["CCO", "xx"]).shape == (2, 300)


# ----------------------------------------------------------------------------------- scripts/embed
def _one_error_line(res) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def test_embed_script_on_a_header_only_csv(tmp_path, run_script):
    csv = tmp_path / "mols.csv"
    csv.write_text("name,smiles\n")
    out = tmp_path / "emb.npy"
    line = _one_error_line(run_script("embed", "--input", str(csv), "--model", MODEL, "--output", str(out), "--no-progress"))
    assert "has a header but no rows" in line and str(csv) in line and not out.exists()


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_embed_script_with_every_smiles_invalid_points_at_the_failure_list(tmp_path, run_script, suffix):
    csv = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": ["xx", "C1CC", "notamolecule"]}).to_csv(csv, index=False)
    out = tmp_path / f"emb{suffix}"
    line = _one_error_line(run_script("embed", "--input", str(csv), "--model", MODEL, "--output", str(out), "--no-progress"))
    failed = tmp_path / "emb.failed.csv"
    assert f"listed in {failed}" in line and "none of the 3 SMILES in column 'smiles'" in line and not out.exists()
    assert pd.read_csv(failed)["smiles"].tolist() == ["xx", "C1CC", "notamolecule"]
    # the same input with one good molecule: exit 0, its row embedded, the list rewritten
    pd.DataFrame({"smiles": ["xx", "CCO"]}).to_csv(csv, index=False)
    res = run_script("embed", "--input", str(csv), "--model", MODEL, "--output", str(out), "--no-progress")
    assert res.returncode == 0 and "embedded 1 of 2" in res.stdout and pd.read_csv(failed)["row"].tolist() == [0]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_embed_script_output_in_an_unwritable_folder_names_the_path_given(tmp_path, run_script):
    csv = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": ["CCO", "CCN"]}).to_csv(csv, index=False)
    out = unwritable_folder(tmp_path) / "emb.npy"
    line = _one_error_line(run_script("embed", "--input", str(csv), "--model", MODEL, "--output", str(out), "--no-progress"))
    assert f"--output {out}: its folder {out.parent} cannot be written" in line and ".tmp" not in line
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    line = _one_error_line(run_script("embed", "--input", str(csv), "--model", MODEL, "--output",
                                      str(blocker / "emb.npy"), "--no-progress"))
    assert f"--output {blocker / 'emb.npy'}" in line and "a file is in the way" in line


def test_atomic_writes_name_the_destination_not_the_temporary_file(tmp_path):
    """Every file the library writes goes through one atomic writer: its errors name the file asked for."""
    from gnnpretrain.utils import atomic_torch_save, atomic_write_json, atomic_write_text

    folder = unwritable_folder(tmp_path)
    for write in (lambda p: atomic_write_text(p, "x"), lambda p: atomic_write_json(p, {"a": 1}),
                  lambda p: atomic_torch_save({"a": 1}, p)):
        target = folder / "result.json"
        with pytest.raises(OutputNotWritableError, match=rf"^{target} cannot be written \(.* in {folder}\)") as err:
            write(target)
        assert ".tmp" not in str(err.value)
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_scripts_writing_into_an_unwritable_folder_give_one_line(tmp_path, run_script):
    """Neighbours: the merged ledger and the report tables of ``compare.py --report-only``."""
    from gnnpretrain.train.compare.ledger import Ledger

    repo = Path(__file__).resolve().parents[1]
    committed = repo / "chem" / "results" / "architectures.csv"
    before = committed.read_bytes()
    folder = unwritable_folder(tmp_path)
    line = _one_error_line(run_script("merge_ledgers", str(committed), "--ledger", str(folder / "merged.csv")))
    assert "--ledger" in line and str(folder) in line
    line = _one_error_line(run_script("compare", "--report-only", "--ledger", str(committed), "--output",
                                      str(folder / "tables")))
    assert str(folder / "tables") in line and ".tmp" not in line
    assert committed.read_bytes() == before and Ledger(committed).read()  # untouched, still readable
    assert os.access(committed, os.R_OK)
