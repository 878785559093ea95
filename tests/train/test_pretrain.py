"""The pre-training loop: run-directory files, exact resume, config checks, and the CLI's bad inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from gnnpretrain.chem import smiles_to_graph
from gnnpretrain.data import GraphStore
from gnnpretrain.strategies import build_strategy
from gnnpretrain.train.pretrain import ConfigMismatchError, pretrain
from gnnpretrain.train.pretrain_data import make_pretrain_loader

REPO = Path(__file__).resolve().parents[2]
TINY = dict(num_layer=2, emb_dim=16, JK="last", drop_ratio=0.1, gnn_type="gin")


def _load_script():
    spec = importlib.util.spec_from_file_location("pretrain_script", REPO / "scripts" / "pretrain.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def store(data_dir):
    smiles = pd.read_csv(data_dir / "moleculenet" / "bbbp.csv")["smiles"].iloc[:160]
    return GraphStore.from_data_list([g for g in map(smiles_to_graph, smiles) if g is not None])


def _run(store, out_dir, epochs, resume=False, name="attrmasking", lr=1e-3, log=lambda s: None, **kw):
    torch.manual_seed(0)
    strategy = build_strategy(name, encoder_kwargs=TINY)
    loader = make_pretrain_loader(store, batch_size=40, seed=0)
    history = pretrain(strategy, loader, epochs=epochs, lr=lr, device="cpu", out_dir=out_dir, resume=resume,
                       progress=False, log=log, **kw)
    return strategy, history


def test_run_directory_contents(store, tmp_path):
    from gnnpretrain.nn import GNN, load_encoder_state

    strategy, history = _run(store, tmp_path / "run", epochs=2)
    run = tmp_path / "run"
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2] and lines == history
    assert all(r["steps"] == 4 and 0.0 <= r["acc"] <= 1.0 and r["loss"] > 0 for r in lines)
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["strategy"] == "attrmasking" and cfg["encoder"] == TINY
    assert cfg["strategy_options"] == {"mask_rate": 0.15, "mask_edge": False}
    # model.pth is a plain encoder state dict that a fresh encoder of the recorded architecture loads
    sd = torch.load(run / "model.pth", weights_only=True)
    assert set(sd) == set(strategy.encoder.state_dict())
    fresh = GNN(**cfg["encoder"])
    load_encoder_state(fresh, run / "model.pth")
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, strategy.encoder.state_dict()[k])
    # the encoder was trained: not equal to a fresh initialisation with the same seed
    torch.manual_seed(0)
    init = build_strategy("attrmasking", encoder_kwargs=TINY).encoder.state_dict()
    assert not torch.equal(init["gnns.0.mlp.0.weight"], sd["gnns.0.mlp.0.weight"])


@pytest.mark.parametrize("name", ["attrmasking", "contextpred"])
def test_resume_reproduces_uninterrupted_run(store, tmp_path, name):
    """2 epochs straight == 1 epoch, stop, resume to 2 (dropout and random masks/roots included)."""
    straight, h_straight = _run(store, tmp_path / "a", epochs=2, name=name)
    _run(store, tmp_path / "b", epochs=1, name=name)
    resumed, h_resumed = _run(store, tmp_path / "b", epochs=2, resume=True, name=name)
    a, b = straight.state_dict(), resumed.state_dict()
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for ra, rb in zip(h_straight, h_resumed):
        assert {k: v for k, v in ra.items() if k != "time_s"} == {k: v for k, v in rb.items() if k != "time_s"}
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_refuses_other_config_and_existing_run(store, tmp_path):
    _run(store, tmp_path / "r", epochs=1)
    with pytest.raises(ConfigMismatchError, match="lr: saved 0.001, now 0.01"):
        _run(store, tmp_path / "r", epochs=2, resume=True, lr=1e-2)
    with pytest.raises(FileExistsError, match="--resume"):
        _run(store, tmp_path / "r", epochs=1)
    _run(store, tmp_path / "r", epochs=1, overwrite=True)  # explicit restart is allowed


def _mock_chip(monkeypatch, native: bool) -> None:
    """An AVX2-only AMD EPYC (issue 18's chip) or an AVX512-BF16 one, whatever this machine is."""
    from gnnpretrain import hardware

    flags = dict(avx2=True, avx512f=native, avx512_bf16=native, amx_bf16=False)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: dict(flags))
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX512" if native else "AVX2")
    monkeypatch.setattr(hardware, "cpu_model", lambda: "AMD EPYC (mocked)")


def test_amp_without_native_bf16_trains_fp32_and_says_so(store, tmp_path, monkeypatch):
    _mock_chip(monkeypatch, native=False)
    lines: list[str] = []
    _, history = _run(store, tmp_path / "amp", epochs=1, amp=True, log=lines.append)
    said = [ln for ln in lines if "bf16" in ln]
    assert len(said) == 1 and said[0].startswith("--amp: running fp32, not bf16: CPU AMD EPYC (mocked)")
    cfg = json.loads((tmp_path / "amp" / "config.json").read_text())
    assert cfg["training"]["amp"] is False and cfg["training"]["compute_dtype"] == "float32"
    assert cfg["hardware"]["cpu_capability"] == "AVX2" and cfg["hardware"]["native_bf16"] is False
    assert history[0]["runtime"]["compute_dtype"] == "float32" and history[0]["loss"] > 0


def test_amp_with_native_bf16_autocasts_on_cpu(store, tmp_path, monkeypatch):
    """Where bf16 is native, ``--amp`` is bf16 autocast on CPU too (not only CUDA): the run's
    losses differ from fp32's, and the records say bfloat16."""
    _mock_chip(monkeypatch, native=True)
    _, h32 = _run(store, tmp_path / "fp32", epochs=1, log=lambda s: None)
    _, h16 = _run(store, tmp_path / "bf16", epochs=1, amp=True, log=lambda s: None)
    cfg = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert cfg["training"]["amp"] is True and cfg["training"]["compute_dtype"] == "bfloat16"
    assert json.loads((tmp_path / "fp32" / "config.json").read_text())["training"]["compute_dtype"] == "float32"
    assert h16[0]["runtime"]["compute_dtype"] == "bfloat16" and h16[0]["loss"] != h32[0]["loss"]


def test_forced_bf16_without_native_support_is_refused_first(store, tmp_path, monkeypatch, script):
    from gnnpretrain.hardware import Bf16UnsupportedError

    _mock_chip(monkeypatch, native=False)
    with pytest.raises(Bf16UnsupportedError, match="bf16 was forced"):
        _run(store, tmp_path / "forced", epochs=1, amp="force")
    assert not (tmp_path / "forced" / "config.json").exists()  # refused before anything was written
    with pytest.raises(Bf16UnsupportedError, match="bf16 was forced"):  # the CLI: before any data is read
        script.main(_cli(tmp_path, "--strategy", "attrmasking", "--amp-dtype", "bf16", "--output", str(tmp_path / "f2")))
    assert not (tmp_path / "f2").exists() and not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def script():
    return _load_script()


def _cli(tmp_path, *extra):
    csv = tmp_path / "corpus.csv"
    if not csv.exists():
        data = pd.read_csv(Path(__file__).resolve().parents[2].parent / "shared" / "data" / "moleculenet" / "bbbp.csv")
        data[["smiles"]].iloc[:80].to_csv(csv, index=False)
    return ["--dataset", str(csv), "--num-layer", "2", "--emb-dim", "16", "--batch-size", "32", "--epochs", "1",
            "--cache", str(tmp_path / "cache"), "--no-progress", *extra]


def test_cli_trains_and_chains_checkpoints(script, tmp_path, data_dir):
    strategy, history = script.main(_cli(tmp_path, "--strategy", "contextpred", "--output", str(tmp_path / "cp")))
    assert (tmp_path / "cp" / "model.pth").is_file() and history[0]["steps"] == 3
    assert history[0]["num_graphs"] == 80 and "num_no_context" in history[0]
    cfg = json.loads((tmp_path / "cp" / "config.json").read_text())
    assert cfg["data"]["num_graphs"] == 80 and cfg["encoder"]["num_layer"] == 2
    # continue from the contextpred encoder with another strategy
    s2, _ = script.main(_cli(tmp_path, "--strategy", "edgepred", "--output", str(tmp_path / "ep"),
                             "--input-model-file", str(tmp_path / "cp" / "model.pth"), "--epochs", "1"))
    assert s2.encoder.num_layer == 2
    # a checkpoint of another architecture is refused with the architecture named
    with pytest.raises(ValueError, match="emb_dim"):
        script.main(_cli(tmp_path, "--strategy", "edgepred", "--output", str(tmp_path / "bad"), "--emb-dim", "8",
                         "--input-model-file", str(tmp_path / "cp" / "model.pth")))


def test_cli_bad_inputs(script, tmp_path, capsys):
    with pytest.raises(SystemExit):
        script.main(_cli(tmp_path, "--strategy", "nosuch"))
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(_cli(tmp_path, "--strategy", "contextpred", "--mask-rate", "0.2"))
    assert "does not apply to strategy 'contextpred'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(_cli(tmp_path, "--strategy", "edgepred", "--epochs", "0"))
    assert "--epochs must be a positive integer" in capsys.readouterr().err
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("name,value\nfoo,1\n")
    with pytest.raises(ValueError, match="(?i)smiles"):
        script.main(_cli(tmp_path, "--strategy", "edgepred", "--dataset", str(nocol), "--output", str(tmp_path / "o1")))
    bad = tmp_path / "bad.csv"
    bad.write_text("smiles\nnot_a_smiles\nC1CC\n")
    with pytest.raises(ValueError, match="(?i)empty|no .*molecule|nothing"):
        script.main(_cli(tmp_path, "--strategy", "edgepred", "--dataset", str(bad), "--output", str(tmp_path / "o2")))
    with pytest.raises(ValueError, match="unknown pre-training dataset 'zinc15'"):
        script.main(_cli(tmp_path, "--strategy", "edgepred", "--dataset", "zinc15", "--output", str(tmp_path / "o3")))
    with pytest.raises(ValueError, match="no labels"):
        script.main(_cli(tmp_path, "--strategy", "supervised", "--output", str(tmp_path / "o4")))
