"""Trust and failure: no file runs code, no output is shared or clobbered, damaged caches repair themselves.

Every crafted file here carries a ``__reduce__`` payload that would create a marker file when
unpickled; each test asserts the payload is refused *and* the marker never appears.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gnnpretrain.errors import CorruptFileError, OutputExistsError, OutputInUseError, OutputNotWritableError, UnsafeFileError
from gnnpretrain.nn import GNN, load_encoder_state
from gnnpretrain.outputs import ensure_writable, output_lock, remove_stale_tmp
from gnnpretrain.safeload import load_torch
from gnnpretrain.utils import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


class _Payload:
    """Unpickling this creates ``marker`` (stands for any code an attacker would run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil(path: Path, marker: Path, extra: dict | None = None) -> Path:
    """A checkpoint that looks normal (an encoder state dict) but carries a payload."""
    obj = {f"{k}": v for k, v in GNN(2, 8).state_dict().items()}
    obj.update(extra or {})
    obj["__payload__"] = _Payload(marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    assert not marker.exists()
    return path


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script_safety", ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _corpus(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.csv"
    path.write_text("smiles\n" + "\n".join(["CCO", "CCN", "c1ccccc1", "CC(=O)O", "CCCl", "C1CCCCC1"] * 3) + "\n")
    return path


PRETRAIN_ARGS = ["--strategy", "attrmasking", "--num-layer", "2", "--emb-dim", "8", "--epochs", "1",
                 "--batch-size", "4", "--no-progress", "--device", "cpu"]


# ------------------------------------------------------------------------------- no code execution
def test_loader_refuses_payload_and_names_the_opt_in(tmp_path):
    marker = tmp_path / "pwned"
    path = _evil(tmp_path / "evil.pth", marker)
    with pytest.raises(UnsafeFileError, match=r"evil\.pth holds Python objects.*io\.open.*--trust-pickle"):
        load_torch(path)
    with pytest.raises(UnsafeFileError):
        load_encoder_state(GNN(2, 8), path)
    assert not marker.exists()


def test_finetune_input_model_file_payload_refused(tmp_path):
    from gnnpretrain.train import FinetuneConfig, run_finetune

    marker = tmp_path / "pwned"
    path = _evil(tmp_path / "evil.pth", marker)
    config = FinetuneConfig(dataset="clintox", input_model_file=str(path), num_layer=2, emb_dim=8, epochs=1,
                            seeds=[0], output=str(tmp_path / "ft"), progress=False)
    with pytest.raises(UnsafeFileError, match="--trust-pickle"):
        run_finetune(config)
    assert not marker.exists()
    assert not list((tmp_path / "ft").rglob("seed*.json"))  # refused before any training


def test_finetune_cli_one_line_exit_2(tmp_path):
    marker = tmp_path / "pwned"
    path = _evil(tmp_path / "evil.pth", marker)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "finetune.py"), "--dataset", "clintox", "--input-model-file", str(path),
         "--num-layer", "2", "--emb-dim", "8", "--epochs", "1", "--seeds", "0", "--output", str(tmp_path / "ft"),
         "--no-progress"],
        capture_output=True, text=True, env=ENV, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and "--trust-pickle" in lines[-1] and "Traceback" not in proc.stderr
    assert not marker.exists()


def test_pretrain_input_model_file_and_resume_payloads_refused(tmp_path):
    cli = _script("pretrain")
    corpus = _corpus(tmp_path)
    marker = tmp_path / "pwned"
    evil = _evil(tmp_path / "evil.pth", marker)
    base = PRETRAIN_ARGS + ["--dataset", str(corpus), "--cache", str(tmp_path / "cache")]
    with pytest.raises(UnsafeFileError, match="--trust-pickle"):
        cli.main(base + ["--output", str(tmp_path / "a"), "--input-model-file", str(evil)])
    assert not (tmp_path / "cache" / "corpus").exists()  # refused before featurizing
    # a run folder whose checkpoint.pth was replaced: --resume refuses it
    run = tmp_path / "run"
    _evil(run / "checkpoint.pth", marker)
    with pytest.raises(UnsafeFileError, match=r"checkpoint\.pth holds Python objects"):
        cli.main(base + ["--output", str(run), "--resume"])
    assert not marker.exists()


def test_pretrain_checkpoint_resumes_with_weights_only(tmp_path):
    """Our own checkpoint.pth (optimizer, RNG states, config) loads with weights_only=True."""
    cli = _script("pretrain")
    base = PRETRAIN_ARGS + ["--dataset", str(_corpus(tmp_path)), "--cache", str(tmp_path / "cache"),
                            "--output", str(tmp_path / "run")]
    cli.main(base)
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    assert set(ckpt) >= {"strategy", "optimizer", "rng", "epoch", "config"}
    assert ckpt["config"]["runtime"]["torch_threads"] >= 1
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["runtime"]["torch"] == torch.__version__
    # the encoder is also written as safetensors, with the run config as metadata; same weights
    a, b = GNN(2, 8).eval(), GNN(2, 8).eval()
    spec = load_encoder_state(a, tmp_path / "run" / "model.safetensors")
    load_encoder_state(b, tmp_path / "run" / "model.pth")
    assert spec["gnn_type"] == "gin" and all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    # an existing run without --resume is refused before loading data
    with pytest.raises(OutputExistsError, match="--resume"):
        cli.main(base)
    # --resume with other settings: one-line ConfigMismatchError before any data is loaded
    from gnnpretrain.train.pretrain import ConfigMismatchError

    with pytest.raises(ConfigMismatchError, match=r"training\.lr: saved 0\.001, now 0\.01.*--overwrite") as err:
        cli.main(base + ["--resume", "--lr", "0.01", "--cache", str(tmp_path / "cache2")])
    assert "\n" not in str(err.value) and not (tmp_path / "cache2" / "corpus").exists()
    _, history = cli.main([a if a != "1" else "2" for a in base] + ["--resume"])
    assert [h["epoch"] for h in history] == [1, 2]


def test_legacy_bio_file_payload_refused_and_trust_opt_in(tmp_path):
    from gnnpretrain.bio.paper import PaperBioDataset, read_paper_file

    marker = tmp_path / "pwned"
    path = tmp_path / "processed" / "geometric_data_processed.pt"
    path.parent.mkdir(parents=True)
    torch.save(({"edge_index": torch.zeros(2, 0), "x": _Payload(marker)}, {}), path)
    with pytest.raises(UnsafeFileError, match=r"trust_pickle=True \(PaperBioDataset"):
        PaperBioDataset(tmp_path)
    assert not marker.exists()
    # a legacy file holding a non-tensor object (here NumPy's RNG state) loads only when trusted
    torch.save(({"edge_index": torch.zeros(2, 0, dtype=torch.long), "edge_attr": torch.zeros(0, 9),
                 "center_node_idx": torch.zeros(1), "note": np.random.get_state()},
                {"edge_index": torch.tensor([0, 0]), "edge_attr": torch.tensor([0, 0]),
                 "center_node_idx": torch.tensor([0, 1])}), path)
    with pytest.raises(UnsafeFileError):
        read_paper_file(tmp_path)
    fields, slices = read_paper_file(tmp_path, trust_pickle=True)
    assert fields["note"][0] == "MT19937" and slices["center_node_idx"].tolist() == [0, 1]
    # a file re-saved by PyG 2.x holding a Data object (with its storage classes) needs no trust
    from torch_geometric.data import Data

    torch.save((Data(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 0]]), edge_attr=torch.zeros(2, 9),
                     center_node_idx=torch.tensor([1])),
                {"x": torch.tensor([0, 3]), "edge_index": torch.tensor([0, 2]), "edge_attr": torch.tensor([0, 2]),
                 "center_node_idx": torch.tensor([0, 1])}), path)
    fields, _ = read_paper_file(tmp_path)
    assert fields["edge_index"].tolist() == [[0, 1], [1, 0]]


def test_truncated_and_non_torch_checkpoints_are_one_line(tmp_path):
    good = tmp_path / "model.pth"
    torch.save(GNN(2, 8).state_dict(), good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pth"
    text.write_text("hello\n")
    with pytest.raises(CorruptFileError, match=r"cut\.pth is a truncated or damaged torch file"):
        load_encoder_state(GNN(2, 8), cut)
    with pytest.raises(CorruptFileError, match=r"notes\.pth is not a torch file"):
        load_encoder_state(GNN(2, 8), text)


# ------------------------------------------------------------------------------- outputs
_HOLDER = """
import sys, time
from gnnpretrain.outputs import output_lock
with output_lock(sys.argv[1], command="holder-test"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_run_on_locked_output_is_refused(tmp_path):
    from gnnpretrain.train.finetune import FinetuneConfig, output_dir, run_finetune

    config = FinetuneConfig(dataset="clintox", num_layer=1, emb_dim=8, epochs=1, seeds=[0],
                            output=str(tmp_path / "ft"), progress=False)
    folder = output_dir(config)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.time()
        with pytest.raises(OutputInUseError, match=rf"in use by another run \(pid {holder.pid} on .*holder-test"):
            run_finetune(config)
        assert time.time() - t0 < 5  # refused at once, not after waiting
        cli = _script("pretrain")
        with pytest.raises(OutputInUseError, match=f"pid {holder.pid}"):
            cli.main(PRETRAIN_ARGS + ["--dataset", str(_corpus(tmp_path)), "--output", str(folder)])
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock went with it
    with output_lock(folder):
        pass


def test_unwritable_output_and_cache_refused_before_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputNotWritableError, match=r"a_file/sub cannot be written \(a file is in the way"):
        ensure_writable(blocker / "sub")
    cli = _script("pretrain")
    corpus = _corpus(tmp_path)
    with pytest.raises(OutputNotWritableError, match="--output"):
        cli.main(PRETRAIN_ARGS + ["--dataset", str(corpus), "--output", str(blocker / "run"), "--cache", str(tmp_path / "c")])
    assert not (tmp_path / "c").exists()  # nothing featurized
    with pytest.raises(OutputNotWritableError, match="--cache"):
        cli.main(PRETRAIN_ARGS + ["--dataset", str(corpus), "--output", str(tmp_path / "run"), "--cache", str(blocker / "c")])
    from gnnpretrain.train import FinetuneConfig, run_finetune

    with pytest.raises(OutputNotWritableError):
        run_finetune(FinetuneConfig(dataset="clintox", epochs=1, seeds=[0], output=str(blocker / "ft"), progress=False))


def test_finetune_rerun_with_other_options_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from gnnpretrain.errors import UserError
    from gnnpretrain.train.finetune import ConfigMismatchError
    from gnnpretrain.utils import run_cli

    assert issubclass(ConfigMismatchError, UserError)
    out = tmp_path / "ft" / "clintox"
    rec = {"finished": True, "config": {"dataset": "clintox", "domain": "chem", "gnn_type": "gin", "num_layer": 1,
                                         "emb_dim": 8, "epochs": 99}}
    atomic_write_json(out / "seed0.json", rec)
    monkeypatch.delenv("GNNPRETRAIN_DEBUG", raising=False)
    cli = _script("finetune")
    with pytest.raises(SystemExit) as exit_info:  # the script's own entry point: main through run_cli
        run_cli(cli.main, ["--dataset", "clintox", "--num-layer", "1", "--emb-dim", "8", "--epochs", "1",
                           "--seeds", "0", "--output", str(tmp_path / "ft"), "--no-progress"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert exit_info.value.code == 2 and len(lines) == 1, lines
    assert "different configuration" in lines[0] and "--overwrite" in lines[0] and "epochs" in lines[0]


# ------------------------------------------------------------------------------- self-repair
def test_stale_tmp_files_are_removed_on_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    left = tmp_path / f".seed0.json.{dead_pid}.abc123.tmp"
    left.write_text("{half")
    os.utime(left, (time.time() - 120, time.time() - 120))
    old = tmp_path / ".model.pth.zz9x.tmp"  # older naming without pid: removed once over an hour old
    old.write_text("x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    mine = tmp_path / f".summary.json.{os.getpid()}.q1.tmp"  # a live writer's file stays
    mine.write_text("x")
    fresh = tmp_path / f".seed2.json.{dead_pid}.zz.tmp"  # dead pid but seconds old: may be another host's write
    fresh.write_text("x")
    atomic_write_json(tmp_path / "seed1.json", {"ok": 1})
    assert not left.exists() and not old.exists() and mine.exists() and fresh.exists()
    assert remove_stale_tmp(tmp_path) == []


def _bbbp(root: Path) -> None:
    (root / "moleculenet").mkdir(parents=True, exist_ok=True)
    (root / "moleculenet" / "bbbp.csv").write_text("smiles,p_np\nCCO,1\nCCN,0\nc1ccccc1,1\nCC(=O)O,0\n")


def test_damaged_moleculenet_cache_is_rebuilt(tmp_path):
    from gnnpretrain.chem.moleculenet import MoleculeNet

    _bbbp(tmp_path)
    ds = MoleculeNet(tmp_path, "bbbp", cache=tmp_path / "c", download=False)
    path = ds.processed_path
    good = path.read_bytes()
    marker = tmp_path / "pwned"
    damages = {
        "wrong format": lambda: torch.save({"format_version": 99}, path),
        "truncated": lambda: path.write_bytes(good[: len(good) // 2]),
        "payload": lambda: torch.save({"format_version": 2, "x": _Payload(marker)}, path),
    }
    for what, damage in damages.items():
        damage()
        with pytest.warns(UserWarning, match=rf"MoleculeNet cache .*{path.name} is damaged"):
            again = MoleculeNet(tmp_path, "bbbp", cache=tmp_path / "c", download=False)
        assert again.smiles == ds.smiles and torch.equal(again._data.x, ds._data.x), what
        assert load_torch(path)["format_version"] == 2
    assert not marker.exists()


def test_damaged_corpus_store_is_rebuilt(tmp_path):
    from gnnpretrain.chem.corpus import load_corpus

    corpus = _corpus(tmp_path)
    store = load_corpus(corpus, cache=tmp_path / "c", progress=False, num_workers=1)
    folder, x = store.path, store.x.clone()
    assert json.loads((folder / "meta.json").read_text())["file_sizes"]["x.npy"] == (folder / "x.npy").stat().st_size
    del store
    xf = folder / "x.npy"
    xf.write_bytes(xf.read_bytes()[:-40])  # a cut memory-mapped array
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = folder.parent / f".{folder.name}.{int(dead.stdout)}.k3j4.tmp"  # a save that was killed
    (leftover / "x.npy").parent.mkdir()
    (leftover / "x.npy").write_bytes(b"half")
    os.utime(leftover, (time.time() - 120, time.time() - 120))
    with pytest.warns(UserWarning, match=r"corpus cache .* is damaged \(.*x\.npy is damaged"):
        store = load_corpus(corpus, cache=tmp_path / "c", progress=False, num_workers=1)
    assert torch.equal(store.x, x)
    assert not leftover.exists()
    meta = json.loads((folder / "meta.json").read_text())
    meta["format_version"] = 0  # another format
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="format version 0"):
        store = load_corpus(corpus, cache=tmp_path / "c", progress=False, num_workers=1)
    assert torch.equal(store.x, x)


def test_chembl_processed_cache_payload_never_runs_and_is_rebuilt(tmp_path):
    """PyG's own loader retries unsafe files with full unpickling; ours refuses, warns and rebuilds."""
    from gnnpretrain.chem.chembl import ChEMBL

    csv = tmp_path / "mine.csv"
    csv.write_text("smiles,A,B\nCCO,1,0\nCCN,0,1\nCCC,1,1\nc1ccccc1,0,0\n")
    opts = dict(path=csv, cache=tmp_path / "c", exclude_downstream=False, min_actives=1, min_inactives=1,
                label_format="binary")
    ds = ChEMBL(**opts)
    data_pt = Path(ds.processed_paths[0])
    marker = tmp_path / "pwned"
    torch.save(({"x": _Payload(marker)}, {}, None), data_pt)
    with pytest.warns(UserWarning, match=r"ChEMBL cache .* is damaged \(.*data\.pt holds Python objects"):
        again = ChEMBL(**opts)
    assert not marker.exists()
    assert len(again) == len(ds) and torch.equal(again._data.y, ds._data.y)
