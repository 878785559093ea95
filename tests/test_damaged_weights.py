"""Damaged weights files, every accepted format, every loader: one line naming the file and the fix.

The files are real: a real encoder saved with ``torch.save`` (``.pth`` and ``.pt``) and with
safetensors, then cut, emptied, given a garbage header, a header that lies about a tensor's dtype,
integer or NaN weights, or the other format's bytes. Each loader a user reaches (the library's
``load_encoder_state``, ``hub.load``, ``gnnpretrain.embed``, ``scripts/embed.py``,
``scripts/finetune.py --input-model-file``, ``scripts/pretrain.py --input-model-file`` and ``--resume``)
must end in :class:`~gnnpretrain.errors.CorruptFileError` — one ``error: ...`` line, exit code 2 —
and never in a traceback from torch's or safetensors' readers.
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import gnnpretrain
from gnnpretrain import hub
from gnnpretrain.errors import CorruptFileError
from gnnpretrain.nn import GNN, load_encoder_state

FORMATS = (".pth", ".pt", ".safetensors")
DAMAGES = ("truncated", "empty", "garbage_header", "lying_dtype", "integer_weights", "nan_weights", "other_format")
SMILES = ["CCO", "c1ccccc1O", "CC(=O)O", "CCN", "CCCl", "C1CCCCC1", "CC(C)O", "c1ccncc1", "CCOC", "OCCO"] * 3


def _save(sd: dict, path: Path) -> Path:
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata={"format": "pt"})
    else:
        torch.save(sd, path)
    return path


def _safetensors_header(data: bytes) -> tuple[dict, int]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n]), n


def make_damaged(folder: Path, suffix: str, damage: str) -> Path:
    """A real 2 x 8 GIN encoder file in format ``suffix``, damaged as ``damage``."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    sd = GNN(2, 8).state_dict()
    good = _save(sd, folder / f"good{suffix}").read_bytes()
    path = folder / f"{damage}{suffix}"
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage_header":
        # safetensors: an 8-byte header length of 2^64 - 1; torch: the first 64 bytes overwritten
        path.write_bytes(b"\xff" * 8 + good[8:] if suffix == ".safetensors" else bytes(range(64)) + good[64:])
    elif damage == "lying_dtype":
        if suffix == ".safetensors":  # the header says F16 for bytes written as F32
            header, n = _safetensors_header(good)
            key = next(k for k in header if k.endswith("mlp.0.weight"))
            header[key]["dtype"] = "F16"
            text = json.dumps(header).encode()
            path.write_bytes(struct.pack("<Q", len(text)) + text + good[8 + n:])
        else:  # a storage record shorter than its declared dtype x elements (a well-formed zip otherwise)
            with zipfile.ZipFile(folder / f"good{suffix}") as zin, zipfile.ZipFile(path, "w") as zout:
                records = [n for n in zin.namelist() if "/data/" in n]
                for name in zin.namelist():
                    data = zin.read(name)
                    zout.writestr(zin.getinfo(name), data[: len(data) // 2] if name == records[-1] else data)
    elif damage == "integer_weights":
        _save({k: (v * 100).to(torch.int64) for k, v in sd.items()}, path)
    elif damage == "nan_weights":
        _save({k: (v * float("nan") if v.is_floating_point() else v) for k, v in sd.items()}, path)
    elif damage == "other_format":
        other = folder / ("other.safetensors" if suffix != ".safetensors" else "other.pth")
        path.write_bytes(_save(sd, other).read_bytes())
    else:
        raise ValueError(damage)
    return path


CASES = [(s, d) for s in FORMATS for d in DAMAGES]
IDS = [f"{d}{s}" for s, d in CASES]


def _one_line(res, path: Path) -> str:
    assert res.returncode == 2, (res.stdout[-500:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert path.name in lines[0]
    return lines[0]


def _fix_named(message: str) -> None:
    assert "recreate or re-download it" in message or "rename it to .pth" in message \
        or "rename it to .safetensors" in message, message


@pytest.mark.parametrize("suffix,damage", CASES, ids=IDS)
def test_library_loaders_give_one_line(tmp_path, suffix, damage):
    path = make_damaged(tmp_path, suffix, damage)
    for load in (lambda: load_encoder_state(GNN(2, 8), path), lambda: hub.load(path),
                 lambda: hub.load_state_dict(path), lambda: gnnpretrain.embed(["CCO"], path)):
        with pytest.raises(CorruptFileError) as err:
            load()
        assert "\n" not in str(err.value) and str(path) in str(err.value)
        _fix_named(str(err.value))
    # the architecture reader used by fine-tuning keeps its defaults; loading then reports the file
    assert hub.architecture_of(path) == {}


@pytest.mark.parametrize("suffix,damage", CASES, ids=IDS)
def test_embed_script_one_line(tmp_path, run_script, suffix, damage):
    path = make_damaged(tmp_path / "w", suffix, damage)
    csv = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": SMILES[:4]}).to_csv(csv, index=False)
    res = run_script("embed", "--input", str(csv), "--model", str(path), "--output", str(tmp_path / "e.npy"),
                     "--no-progress")
    _fix_named(_one_line(res, path))
    assert not (tmp_path / "e.npy").exists()


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    csv = tmp_path / "mols.csv"
    pd.DataFrame({"smiles": SMILES, "y": [float(i % 7) for i in range(len(SMILES))]}).to_csv(csv, index=False)
    return csv


@pytest.mark.parametrize("suffix,damage", CASES, ids=IDS)
def test_finetune_input_model_file_one_line_before_featurizing(tmp_path, run_script, tiny_csv, suffix, damage):
    path = make_damaged(tmp_path / "w", suffix, damage)
    for arch in ([], ["--gnn-type", "gin", "--num-layer", "2", "--emb-dim", "8"]):
        out = tmp_path / f"ft{len(arch)}"
        res = run_script("finetune", "--dataset", str(tiny_csv), "--target-columns", "y", "--input-model-file",
                         str(path), "--epochs", "1", "--seeds", "0", "--output", str(out), "--no-progress",
                         "--cache", str(tmp_path / "cache"), *arch)
        _fix_named(_one_line(res, path))
        assert not list(out.rglob("seed*.json"))


PRETRAIN = ["--strategy", "attrmasking", "--num-layer", "2", "--emb-dim", "8", "--epochs", "1", "--batch-size", "8",
            "--no-progress", "--device", "cpu"]


@pytest.mark.parametrize("suffix,damage", CASES, ids=IDS)
def test_pretrain_input_model_file_one_line_before_featurizing(tmp_path, run_script, tiny_csv, suffix, damage):
    path = make_damaged(tmp_path / "w", suffix, damage)
    res = run_script("pretrain", *PRETRAIN, "--dataset", str(tiny_csv), "--output", str(tmp_path / "run"),
                     "--cache", str(tmp_path / "cache"), "--input-model-file", str(path))
    _fix_named(_one_line(res, path))
    assert not (tmp_path / "cache").exists()  # refused before featurizing


def test_pretrain_resume_damaged_checkpoint_and_config(tmp_path, run_script, tiny_csv):
    """A real run's checkpoint.pth and config.json, damaged in each way: ``--resume`` is one line before
    featurizing (a fresh cache stays absent), and so is the library's own resume in ``pretrain()``."""
    run = tmp_path / "run"
    base = [*PRETRAIN, "--dataset", str(tiny_csv), "--output", str(run)]
    assert run_script("pretrain", *base, "--cache", str(tmp_path / "cache")).returncode == 0
    ckpt, cfg = run / "checkpoint.pth", run / "config.json"
    good_ckpt, good_cfg = ckpt.read_bytes(), cfg.read_bytes()
    sd = torch.load(ckpt, weights_only=True)
    damages = {
        "truncated": lambda: ckpt.write_bytes(good_ckpt[: len(good_ckpt) // 2]),
        "empty": lambda: ckpt.write_bytes(b""),
        "garbage": lambda: ckpt.write_bytes(bytes(range(64)) + good_ckpt[64:]),
        "an encoder copied over it": lambda: ckpt.write_bytes((run / "model.pth").read_bytes()),
        "epoch written as text": lambda: torch.save({**sd, "epoch": "1"}, ckpt),
        "NaN weights": lambda: torch.save({**sd, "strategy": {k: v * float("nan") if v.is_floating_point() else v
                                                              for k, v in sd["strategy"].items()}}, ckpt),
        "safetensors bytes": lambda: ckpt.write_bytes((run / "model.safetensors").read_bytes()),
    }
    for i, (what, damage) in enumerate(damages.items()):
        damage()
        fresh = tmp_path / f"cache{i}"
        res = run_script("pretrain", *base, "--resume", "--cache", str(fresh))
        line = _one_line(res, ckpt)
        assert "--overwrite" in line or "recreate or re-download" in line, (what, line)
        assert not fresh.exists(), what
    ckpt.write_bytes(good_ckpt)
    cfg.write_text('{"strategy": "attrmask')  # cut mid-write by hand
    res = run_script("pretrain", *base, "--resume", "--cache", str(tmp_path / "cache_cfg"))
    assert "--overwrite" in _one_line(res, cfg)

    # the library's pretrain(resume=True) reads through the same checks
    from gnnpretrain.chem.corpus import load_corpus
    from gnnpretrain.strategies import build_strategy
    from gnnpretrain.train.pretrain import pretrain
    from gnnpretrain.train.pretrain_data import make_pretrain_loader

    cfg.write_bytes(good_cfg)
    ckpt.write_bytes((run / "model.pth").read_bytes())
    store = load_corpus(str(tiny_csv), cache=str(tmp_path / "cache"), progress=False)
    saved = json.loads(good_cfg)
    strategy = build_strategy("attrmasking", encoder_kwargs=saved["encoder"])
    own = ("strategy", "domain", "encoder", "strategy_options", "training", "output_model_file", "runtime")
    with pytest.raises(CorruptFileError, match=r"checkpoint\.pth is not a whole pre-training checkpoint.*--overwrite"):
        pretrain(strategy, make_pretrain_loader(store, batch_size=8), epochs=2, lr=1e-3, device="cpu", out_dir=run,
                 resume=True, progress=False, log=lambda s: None,
                 config={k: v for k, v in saved.items() if k not in own})


def test_damaged_hub_download_names_the_cached_file(tmp_path, monkeypatch):
    """A registered name whose cached copy is cut (no recorded hash to catch it) says which file to delete."""
    entry = next(e for e in hub.list("chem") if e.sha256 is None)
    cached = tmp_path / "cache" / "hub" / entry.domain / entry.filename
    cached.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(GNN(5, 300).state_dict(), cached)
    cached.write_bytes(cached.read_bytes()[:1000])
    monkeypatch.setenv("GNNPRETRAIN_CHECKPOINTS", str(tmp_path / "none"))
    with pytest.raises(CorruptFileError, match=rf"delete {cached}: hub\.load\('{entry.name}'\) then downloads it again"):
        hub.load(entry.name, cache=tmp_path / "cache", download=False)


def test_undamaged_files_of_every_format_still_load(tmp_path):
    """The checks do not refuse what training writes: float32 and bfloat16 weights in every format."""
    torch.manual_seed(0)
    ref = GNN(2, 8)
    for suffix in FORMATS:
        for dtype in (torch.float32, torch.bfloat16):
            sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in ref.state_dict().items()}
            path = _save(sd, tmp_path / f"ok_{str(dtype)[6:]}{suffix}")
            gnn = hub.load(path)
            assert gnn.num_layer == 2 and gnn.emb_dim == 8
            load_encoder_state(GNN(2, 8), path)
