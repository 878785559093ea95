"""The ledger is read as strictly as it is written (issue 21).

Real files throughout: the ledger committed in ``chem/results/architectures.csv`` (format 1) and the
MoleculeACE suite's ledger, copied and then edited the way a hand, a bad merge or a second machine
would — a line duplicated, a conflicting score, a seed written ``1.0``, a score edited into text —
and read back through the same entry points the report and ``scripts/compare.py`` use.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from gnnpretrain.errors import UserError
from gnnpretrain.train.compare.ledger import (
    COLUMNS,
    COLUMNS_V1,
    LEDGER_FORMAT,
    Ledger,
    LedgerConflictError,
    LedgerFormatError,
    LedgerMismatchError,
    config_hash,
    line_from_record,
    merge_ledgers,
)
from gnnpretrain.train.compare.report import report_from_ledger

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "chem" / "results" / "architectures.csv"  # grows with the campaign
#: The committed ledger as it was before the campaign (format 1, four lines): the fixed input of these tests.
FORMAT1 = REPO / "tests" / "fixtures" / "ledger_format1.csv"
MOLECULEACE = REPO / "chem" / "results" / "moleculeace.csv"


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    path.write_text(buf.getvalue())
    return path


def _copy(tmp_path: Path, name: str = "arch.csv") -> Path:
    dest = tmp_path / name
    dest.write_bytes(FORMAT1.read_bytes())
    return dest


def _record(seed: int, auc: float, **extra) -> dict:
    """A seed record of the committed ledger's first row (GCN from scratch on BACE, paper protocol),
    with the keys :func:`gnnpretrain.train.finetune.make_record` writes and ``line_from_record`` reads."""
    from gnnpretrain.train.finetune import FinetuneConfig

    cfg = {**FinetuneConfig(dataset="bace", gnn_type="gcn").to_dict(), "input_model_sha256": None,
           **extra.pop("config", {})}
    return {"config": cfg, "dataset": "bace", "seed": seed, "best_valid": {"test_auc": auc, "valid_auc": 0.7, "epoch": 12},
            "last": {"test_auc": auc - 0.01}, "split": {"train": 1210, "valid": 151, "test": 152}, "wall_time_s": 3.5,
            "device": "cpu", "runtime": {"torch": "2.13.0+cpu", "torch_threads": 1, "device": "cpu"}, **extra}


def _line(seed: int, auc: float = 0.71, **extra) -> dict[str, str]:
    return line_from_record(_record(seed, auc, **extra), experiment="architectures", row="none:gcn", baseline=None,
                            checkpoint=None)


# --------------------------------------------------------------------------- formats and columns
def test_committed_ledger_reads_and_keeps_its_hashes():
    """The four lines committed before the campaign are valid, still in the committed ledger (which
    the campaign grows), and their hashes are what today's code computes for them."""
    led = Ledger(FORMAT1)
    lines = led.read()
    assert len(lines) == 4 and led.format() == 1 and LEDGER_FORMAT == 2
    assert all(ln["compute_dtype"] == "" and ln["cpu_capability"] == "" for ln in lines)
    grown = {(ln["row"], ln["dataset"], ln["seed"]): ln for ln in Ledger(COMMITTED).read()}
    for ln in lines:
        kept = grown[ln["row"], ln["dataset"], ln["seed"]]
        assert kept["config_hash"] == ln["config_hash"] and kept["test_auc_best_valid"] == ln["test_auc_best_valid"]
    assert lines[0]["config_hash"] == "a99242885caf6d40" == config_hash(_record(0, 0.5)["config"])
    assert _line(0)["config_hash"] == lines[0]["config_hash"]  # a new line of that cell matches the old one
    assert tuple(_rows(FORMAT1)[0]) == COLUMNS_V1


def test_compute_columns_are_recorded_but_never_hashed():
    plain = _line(1)
    assert plain["compute_dtype"] == "float32" and plain["cpu_capability"] == "" and plain["ledger_format"] == "2"
    amp = _line(1, config={"amp": True})
    assert amp["compute_dtype"] == "bfloat16"
    assert amp["config_hash"] != plain["config_hash"]  # amp itself is a result key, as before
    told = _line(1, compute_dtype="float16", runtime={"torch_threads": 1, "cpu_capability": "AVX512"})
    assert told["compute_dtype"] == "float16" and told["cpu_capability"] == "AVX512"
    assert told["config_hash"] == plain["config_hash"]
    assert config_hash({**_record(1, 0.5)["config"], "compute_dtype": "bfloat16", "cpu_capability": "AVX2"}) \
        == plain["config_hash"]


def test_appending_to_a_format1_file_upgrades_it_without_touching_old_values(tmp_path):
    path = _copy(tmp_path)
    header1, old_rows = _rows(path)
    assert Ledger(path).append([_line(1)]) == 1
    header2, rows = _rows(path)
    assert tuple(header2) == COLUMNS and len(rows) == 5
    for old, new in zip(old_rows, rows):  # every old value, byte for byte, under its column
        back = dict(zip(header2, new))
        assert {c: back[c] for c in header1} == dict(zip(header1, old))
        assert back["compute_dtype"] == back["cpu_capability"] == "" and back["ledger_format"] == "1"
    assert dict(zip(header2, rows[4]))["compute_dtype"] == "float32"
    assert Ledger(path).read()[4]["seed"] == "1" and Ledger(path).format() == 2
    summary = report_from_ledger(path, tmp_path / "tables")
    assert summary["seeds"] == [0, 1]


def test_unknown_header_and_future_lines_are_refused(tmp_path):
    header, rows = _rows(FORMAT1)
    bad = _write(tmp_path / "x.csv", header[:-1], [r[:-1] for r in rows])
    with pytest.raises(LedgerFormatError, match=r"x\.csv: not a ledger of a known format \(missing columns \['finished_at'\]"):
        Ledger(bad).read()
    future = [list(r) for r in rows]
    future[1][header.index("ledger_format")] = "3"
    with pytest.raises(LedgerFormatError, match=r"line 3, column 40 \(ledger_format\): format 3 in a file of format 1"):
        Ledger(_write(tmp_path / "y.csv", header, future)).read()


# ------------------------------------------------------------------------------ malformed values
MALFORMED = [
    ("seed", "1.0", "is not an integer"),
    ("seed", "", "empty, but every line needs it"),
    ("test_auc_best_valid", "abc", "is not a number"),
    ("test_auc_best_valid", "nan", "is NaN"),
    ("test_auc_last", "inf", "is infinite"),
    ("best_valid_auc", "1.5", r"outside \[0, 1\]"),
    ("best_epoch", "-3", "is negative"),
    ("n_train", "1210.5", "is not an integer"),
    ("lr", "fast", "is not a number"),
    ("epochs", "1e2", "is not an integer"),
    ("config_hash", "not-a-hash", "is not 16 lower-case hex digits"),
    ("checkpoint_sha256", "abc", "is not 64 lower-case hex digits"),
    ("finished_at", "yesterday", "is not a UTC time"),
    ("row", "", "empty"),
]


@pytest.mark.parametrize("column,value,message", MALFORMED, ids=[f"{c}={v!r}" for c, v, _ in MALFORMED])
def test_malformed_value_names_file_line_and_column(tmp_path, run_script, column, value, message):
    header, rows = _rows(FORMAT1)
    rows[2][header.index(column)] = value
    path = _write(tmp_path / "edited.csv", header, rows)
    where = rf"edited\.csv line 4, column {header.index(column) + 1} \({column}\): .*{message}"
    with pytest.raises(LedgerFormatError, match=where) as err:
        Ledger(path).read()
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)
    with pytest.raises(LedgerFormatError, match=where):
        report_from_ledger(path, tmp_path / "t")
    res = run_script("compare", "--report-only", "--ledger", str(path), "--output", str(tmp_path / "t"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error: ")


def test_format2_line_needs_its_compute_dtype(tmp_path):
    path = tmp_path / "new.csv"
    Ledger(path).append([_line(0), _line(1)])
    header, rows = _rows(path)
    rows[1][header.index("compute_dtype")] = "fp8"
    with pytest.raises(LedgerFormatError, match=r"line 3, column 17 \(compute_dtype\): 'fp8' is not one of float32"):
        Ledger(_write(path, header, rows)).read()
    rows[1][header.index("compute_dtype")] = ""
    with pytest.raises(LedgerFormatError, match=r"column 17 \(compute_dtype\): empty"):
        Ledger(_write(path, header, rows)).read()


def test_a_line_that_would_not_read_back_is_not_written(tmp_path):
    led = Ledger(tmp_path / "l.csv")
    with pytest.raises(LedgerFormatError, match=r"new line none:gcn/bace/0 .*test_auc_best_valid\): 'nan' is NaN"):
        led.append([_line(0, auc=float("nan"))])
    assert not led.path.exists()


# -------------------------------------------------------------------------- duplicates, conflicts
def test_identical_and_repeated_lines_collapse_with_one_warning(tmp_path, run_script):
    header, rows = _rows(FORMAT1)
    again = list(rows[1])
    again[header.index("finished_at")] = "2026-12-03T09:00:00Z"  # the same result, recorded again elsewhere
    again[header.index("test_auc_best_valid")] += "0"  # 0.83...4 written 0.83...40: the same number
    path = _write(tmp_path / "dup.csv", header, [*rows, list(rows[0]), again])
    with pytest.warns(UserWarning) as caught:
        lines = Ledger(path).read()
    assert len(lines) == 4 and [ln["seed"] for ln in lines] == ["0"] * 4
    assert len(caught) == 1 and "2 line(s) repeat the result" in str(caught[0].message)
    assert "lines 6 = 2, 7 = 3" in str(caught[0].message)
    out = tmp_path / "tables"
    res = run_script("compare", "--report-only", "--ledger", str(path), "--output", str(out))
    assert res.returncode == 0, res.stderr
    assert [ln for ln in res.stderr.splitlines() if ln.strip()] == [ln for ln in res.stderr.splitlines()
                                                                    if ln.startswith("warning: ")]
    assert len([ln for ln in res.stderr.splitlines() if ln.startswith("warning: ")]) == 1
    cells = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert {c["n"] for c in cells if c["dataset"] == "bace"} == {"1"}  # counted once, not twice
    # the next append writes each result once
    with pytest.warns(UserWarning, match="repeat"):
        Ledger(path).append([_line(1)])
    assert len(_rows(path)[1]) == 5


def test_conflicting_line_is_refused_naming_both_lines(tmp_path, run_script):
    """The issue's case: a 0.99 line for a cell that already has a score would have been averaged in."""
    header, rows = _rows(FORMAT1)
    other = list(rows[0])
    other[header.index("test_auc_best_valid")] = "0.99"
    path = _write(tmp_path / "conflict.csv", header, [*rows, other])
    with pytest.raises(LedgerConflictError,
                       match=r"conflict\.csv: lines 2 and 6 are both none:gcn/bace/0 but differ \(test_auc_best_valid: "
                             r"0\.7200486871848374 vs 0\.99\).*delete the line that is wrong"):
        Ledger(path).read()
    res = run_script("compare", "--report-only", "--ledger", str(path), "--output", str(tmp_path / "t"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "lines 2 and 6" in res.stderr
    # the same cell under another configuration hash, or another best epoch, is a conflict as well
    for column, value in (("config_hash", "0" * 16), ("best_epoch", "28"), ("n_test", "151")):
        other = list(rows[0])
        other[header.index(column)] = value
        with pytest.raises(LedgerConflictError, match=rf"lines 2 and 6 .*{column}"):
            Ledger(_write(path, header, [*rows, other])).read()
    # seed 0 written as 00 is the same cell
    other = list(rows[0])
    other[header.index("seed")], other[header.index("test_auc_last")] = "00", "0.5"
    with pytest.raises(LedgerConflictError, match="lines 2 and 6"):
        Ledger(_write(path, header, [*rows, other])).read()


def test_mixed_protocols_and_regrown_rows_are_refused_on_read(tmp_path):
    header, rows = _rows(FORMAT1)
    other = list(rows[0])
    other[header.index("seed")], other[header.index("epochs")] = "5", "10"
    with pytest.raises(LedgerMismatchError, match=r"line 6: another fine-tuning protocol than .* line 2 \(epochs: '100' vs '10'\)"):
        Ledger(_write(tmp_path / "p.csv", header, [*rows, other])).read()
    other = list(rows[1])
    other[header.index("seed")], other[header.index("checkpoint_sha256")] = "5", "0" * 64
    with pytest.raises(LedgerMismatchError, match=r"line 6: row 'ref:gcn_supervised_contextpred' has another encoder"):
        Ledger(_write(tmp_path / "r.csv", header, [*rows, other])).read()
    # 0.001 and 1e-3 are one learning rate: not a protocol change
    same = list(rows[0])
    same[header.index("seed")], same[header.index("lr")] = "5", "1e-3"
    assert len(Ledger(_write(tmp_path / "s.csv", header, [*rows, same])).read()) == 5


# ------------------------------------------------------------------------------------- merging
def test_merge_ledgers_of_two_machines(tmp_path, run_script):
    header, rows = _rows(FORMAT1)
    a = _write(tmp_path / "a.csv", header, rows[:3])
    b = _write(tmp_path / "b.csv", header, rows[1:])  # rows 1-2 on both machines
    out = tmp_path / "merged" / "all.csv"
    with pytest.warns(UserWarning, match=r"2 line\(s\) repeat .*b\.csv line 2 = .*a\.csv line 3"):
        result = merge_ledgers([a, b], out)
    assert result["lines"] == 4 and result["added"] == 4 and result["inputs"] == {str(a): 3, str(b): 3}
    merged = Ledger(out).read()
    assert merged == Ledger(FORMAT1).read() and Ledger(out).format() == 2
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    # merging again adds nothing and leaves the file as it is
    before = out.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert merge_ledgers([a, b], out)["added"] == 0
    assert out.read_bytes() == before
    # the script: one summary line, exit 0
    res = run_script("merge_ledgers", str(a), str(b), "--ledger", str(tmp_path / "m2.csv"))
    assert res.returncode == 0 and "4 lines, 4 new" in res.stdout, res.stderr
    assert len([ln for ln in res.stderr.splitlines() if ln.strip()]) == 1 and res.stderr.startswith("warning: ")


def test_merge_refuses_conflicts_protocols_and_malformed_inputs(tmp_path, run_script):
    header, rows = _rows(FORMAT1)
    a = _write(tmp_path / "a.csv", header, rows[:2])
    other = list(rows[1])
    other[header.index("test_auc_last")] = "0.5"
    b = _write(tmp_path / "b.csv", header, [other, rows[2]])
    out = tmp_path / "out.csv"
    with pytest.raises(LedgerConflictError, match=r"a\.csv line 3 and .*b\.csv line 2 are both ref:gcn_supervised_contextpred/bace/0"):
        merge_ledgers([a, b], out)
    assert not out.exists()  # nothing written
    res = run_script("merge_ledgers", str(a), str(b), "--ledger", str(out))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "b.csv line 2" in res.stderr
    proto = list(rows[3])
    proto[header.index("batch_size")] = "64"
    c = _write(tmp_path / "c.csv", header, [proto])
    with pytest.raises(LedgerMismatchError, match=r"c\.csv line 2: another fine-tuning protocol .*batch_size: '32' vs '64'"):
        merge_ledgers([a, c], out)
    bad = list(rows[3])
    bad[header.index("seed")] = "1.0"
    d = _write(tmp_path / "d.csv", header, [bad])
    with pytest.raises(LedgerFormatError, match=r"d\.csv line 2, column 6 \(seed\): '1\.0' is not an integer"):
        merge_ledgers([a, d], out)
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        merge_ledgers([a, tmp_path / "nope.csv"], out)
    assert not out.exists()


_APPENDER = """
import json, sys
from gnnpretrain.train.compare.ledger import Ledger
base = json.loads(open(sys.argv[2]).read())
led = Ledger(sys.argv[1])
for seed in range(1, 31):
    led.append([{**base, "seed": str(seed)}])
"""


def test_merge_while_a_comparison_appends_loses_nothing(tmp_path):
    """Merge and append share the output's lock and both replace the file atomically."""
    import json

    out = tmp_path / "live.csv"
    Ledger(out).append([_line(0)])
    header, rows = _rows(out)
    (tmp_path / "base.json").write_text(json.dumps(_line(0)))
    inputs = []
    for k in range(5):  # five machines' ledgers, one line each (seeds 100-104)
        row = list(rows[0])
        row[header.index("seed")] = str(100 + k)
        inputs.append(_write(tmp_path / f"m{k}.csv", header, [row]))
    proc = subprocess.Popen([sys.executable, "-c", _APPENDER, str(out), str(tmp_path / "base.json")],
                            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    try:
        for src in inputs:
            merge_ledgers([src], out)
    finally:
        assert proc.wait(120) == 0
    seeds = sorted(int(ln["seed"]) for ln in Ledger(out).read())
    assert seeds == [0, *range(1, 31), *range(100, 105)]


# ------------------------------------------------------------------------- the MoleculeACE ledger
def test_moleculeace_ledger_is_read_strictly(tmp_path):
    from gnnpretrain.train.compare.moleculeace import _read_ledger, moleculeace_report

    header, rows = _rows(MOLECULEACE)
    committed = _read_ledger(MOLECULEACE)
    assert len(committed) == len(rows)
    with pytest.warns(UserWarning, match=r"1 line\(s\) repeat"):
        dup = moleculeace_report(_write(tmp_path / "dup.csv", header, [*rows, rows[0]]), tmp_path / "r1")
    ref = moleculeace_report(MOLECULEACE, tmp_path / "r0")
    assert [c["n"] for c in dup["cells"]] == [c["n"] for c in ref["cells"]]
    other = list(rows[0])
    other[header.index("test_rmse_best_valid")] = "0.1"
    with pytest.raises(LedgerConflictError, match=rf"lines 2 and {len(rows) + 2} are both none:gcn/CHEMBL1871_Ki/0"):
        moleculeace_report(_write(tmp_path / "c.csv", header, [*rows, other]), tmp_path / "r2")
    bad = [list(r) for r in rows]
    bad[3][header.index("seed")] = "1.0"
    with pytest.raises(LedgerFormatError, match=r"line 5, column 3 \(seed\): '1\.0' is not an integer"):
        moleculeace_report(_write(tmp_path / "b.csv", header, bad), tmp_path / "r3")
    bad[3][header.index("seed")], bad[3][header.index("test_rmse_last")] = "1", "-0.2"
    with pytest.raises(LedgerFormatError, match=r"column 11 \(test_rmse_last\): '-0\.2' is negative"):
        moleculeace_report(_write(tmp_path / "b.csv", header, bad), tmp_path / "r3")
