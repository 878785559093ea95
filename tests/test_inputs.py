"""Damaged and ambiguous CSV inputs are errors naming file and line/columns, never silent guesses."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from gnnpretrain.chem.chembl import read_long
from gnnpretrain.chem.corpus import load_corpus, read_smiles
from gnnpretrain.chem.csvio import find_label_columns, find_smiles_column, read_csv_checked
from gnnpretrain.chem.moleculenet import MoleculeNet
from gnnpretrain.errors import CSVFormatError, UserError

ROOT = Path(__file__).resolve().parents[1]
GOOD = "smiles,p_np\nCCO,1\nCCN,0\nc1ccccc1,1\n"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_good_file_reads_like_pandas(tmp_path):
    df = read_csv_checked(_write(tmp_path / "a.csv", GOOD + "\n"))
    assert list(df.columns) == ["smiles", "p_np"] and len(df) == 3


@pytest.mark.parametrize(
    "text, match",
    [
        ("smiles,p_np\nCCO,1\nCCN\nc1ccccc1,1\n", r"a\.csv: line 3 has 1 fields but the header has 2 \(ragged row\)"),
        ("smiles,p_np\nCCO,1\nCCN,0,7\nc1ccccc1,1\n", r"a\.csv: line 3 has 3 fields but the header has 2"),
        ("smiles,p_np\nCCO,1\nCCN,0\nc1cc", r"a\.csv: the file looks truncated: its last line \(4\) has 1 of 2 fields"),
        ("smiles,smiles\nCCO,CCO\n", r"names column\(s\) \['smiles'\] more than once"),
    ],
)
def test_ragged_and_cut_rows_name_file_and_line(tmp_path, text, match):
    with pytest.raises(CSVFormatError, match=match):
        read_csv_checked(_write(tmp_path / "a.csv", text))


def test_cut_gzipped_csv_is_detected(tmp_path):
    path = _write(tmp_path / "a.csv.gz", "smiles,id\nCCO,1\nCCN,2\nCC")
    with pytest.raises(CSVFormatError, match="looks truncated"):
        read_smiles([path])


def test_quoted_separator_is_not_ragged(tmp_path):
    df = read_csv_checked(_write(tmp_path / "a.csv", 'smiles,name\nCCO,"ethanol, dry"\n'))
    assert df["name"].tolist() == ["ethanol, dry"]


def test_moleculenet_cut_file_is_an_error_not_a_shorter_dataset(tmp_path):
    _write(tmp_path / "moleculenet" / "bbbp.csv", "smiles,p_np\nCCO,1\nCCN,0\nc1ccccc1")
    with pytest.raises(CSVFormatError, match=r"bbbp\.csv: the file looks truncated"):
        MoleculeNet(tmp_path, "bbbp", cache=tmp_path / "c", download=False)
    assert not (tmp_path / "c" / "moleculenet").exists() or not any((tmp_path / "c").rglob("*.pt"))


def test_two_smiles_columns_are_ambiguous(tmp_path):
    with pytest.raises(CSVFormatError, match=r"several columns could hold the SMILES: \['smiles', 'SMILES'\]; choose one with --smiles-column"):
        find_smiles_column(["smiles", "SMILES", "y"])
    assert find_smiles_column(["smiles", "SMILES", "y"], "SMILES") == "SMILES"
    with pytest.raises(CSVFormatError, match="no SMILES column 'smi'"):
        find_smiles_column(["smiles", "y"], "smi")
    # the corpus reader (scripts/pretrain.py --dataset FILE) and the MoleculeNet loader refuse too
    corpus = _write(tmp_path / "corpus.csv", "smiles,SMILES\nCCO,CCO\nCCN,CCN\n")
    with pytest.raises(CSVFormatError, match=r"corpus\.csv: several columns.*--smiles-column"):
        load_corpus(corpus, cache=tmp_path / "c", progress=False)
    assert len(read_smiles([corpus], "SMILES")) == 2
    _write(tmp_path / "moleculenet" / "bace.csv", "smiles,mol,Class\nCCO,CCO,1\n")
    with pytest.raises(CSVFormatError, match=r"several columns could hold the SMILES: \['smiles', 'mol'\]"):
        MoleculeNet(tmp_path, "bace", cache=tmp_path / "c", download=False)


def test_label_meant_twice_is_ambiguous(tmp_path):
    with pytest.raises(CSVFormatError, match=r"column 'Class' could be any of \['Class', 'class '\]"):
        find_label_columns(["mol", "Class", "class "], ["Class"])
    _write(tmp_path / "moleculenet" / "bace.csv", "mol,Class,class\nCCO,1,0\n")
    with pytest.raises(CSVFormatError, match="could be any of"):
        MoleculeNet(tmp_path, "bace", cache=tmp_path / "c", download=False)
    chembl = _write(tmp_path / "chembl.csv", "smiles,CHEMBL1,chembl1\nCCO,1,0\n")
    with pytest.raises(CSVFormatError, match="could be any of"):
        read_long([chembl])


def test_chembl_ragged_row(tmp_path):
    chembl = _write(tmp_path / "chembl.csv", "smiles,CHEMBL1,CHEMBL2\nCCO,1,0\nCCN,1\n")
    with pytest.raises(CSVFormatError, match=r"chembl\.csv: line 3 has 2 fields"):
        read_long([chembl])


def test_script_prints_one_line_and_exits_2(tmp_path):
    corpus = _write(tmp_path / "corpus.csv", "smiles,SMILES\nCCO,CCO\n")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "pretrain.py"), "--strategy", "attrmasking", "--dataset", str(corpus),
         "--cache", str(tmp_path / "c"), "--output", str(tmp_path / "run"), "--epochs", "1", "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--smiles-column" in lines[0], proc.stderr


def test_user_errors_share_a_base():
    assert issubclass(CSVFormatError, UserError) and issubclass(CSVFormatError, ValueError)


def test_run_cli_one_line_and_debug_traceback(capsys, monkeypatch):
    from gnnpretrain.utils import run_cli

    def bad():
        raise CSVFormatError("x.csv: line 3 has 1 fields but the header has 2 (ragged row)")

    monkeypatch.delenv("GNNPRETRAIN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(bad)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: x.csv: line 3 has 1 fields but the header has 2 (ragged row)\n"
    monkeypatch.setenv("GNNPRETRAIN_DEBUG", "1")
    with pytest.raises(CSVFormatError):
        run_cli(bad)
