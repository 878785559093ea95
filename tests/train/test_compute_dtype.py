"""Fine-tuning computes in bf16 only where the chip multiplies bf16 natively, and says what it computed.

The chip cannot be switched under the tests, so the decision tests substitute the CPU probes of
``gnnpretrain.hardware`` (an AVX2-only Zen 3, an AVX512-BF16 Zen 4); the record test runs for real.
"""

from __future__ import annotations

import warnings

import pytest

from gnnpretrain import hardware
from gnnpretrain.hardware import Bf16UnsupportedError
from gnnpretrain.train.compare.ledger import line_from_record
from gnnpretrain.train.run import FinetuneConfig, recorded_config
from gnnpretrain.train.separate import finetune_seed
from gnnpretrain.train.tasks import get_task

ZEN3 = ("AMD EPYC 7B13", "AVX2", dict(avx2=True, avx512f=False, avx512_bf16=False, amx_bf16=False))
ZEN4 = ("AMD EPYC 9B14", "AVX512", dict(avx2=True, avx512f=True, avx512_bf16=True, amx_bf16=False))


def _use(monkeypatch, chip) -> None:
    model, capability, flags = chip
    monkeypatch.setattr(hardware, "cpu_model", lambda: model)
    monkeypatch.setattr(hardware, "cpu_capability", lambda: capability)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: dict(flags))


def test_amp_without_native_bf16_runs_fp32_and_says_so(monkeypatch):
    _use(monkeypatch, ZEN3)
    with pytest.warns(UserWarning, match="running fp32, not bf16") as caught:
        cfg = FinetuneConfig(dataset="bace", amp=True, device="cpu")
    assert len(caught) == 1 and "AVX2" in str(caught[0].message)
    assert cfg.amp is False and cfg.compute_dtype == "float32"
    # what is computed is what is hashed: the same cells as a plain fp32 run
    assert recorded_config(cfg)["amp"] is False


def test_forced_bf16_without_native_support_is_refused(monkeypatch, run_script):
    _use(monkeypatch, ZEN3)
    with pytest.raises(Bf16UnsupportedError, match="bf16 was forced"):
        FinetuneConfig(dataset="bace", amp="force", device="cpu")
    res = run_script("finetune", "--dataset", "bace", "--amp-dtype", "bf16", "--device", "cpu", "--epochs", "1")
    assert res.returncode == 2 and "bf16 was forced" in res.stderr


def test_amp_with_native_bf16_runs_bf16_without_a_warning(monkeypatch):
    _use(monkeypatch, ZEN4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg = FinetuneConfig(dataset="bace", amp=True, device="cpu")
        forced = FinetuneConfig(dataset="bace", amp="force", device="cpu")
    assert cfg.amp is True and forced.amp is True and cfg.compute_dtype == "bfloat16"


def test_records_and_ledger_lines_carry_dtype_and_cpu(data_dir, cache):
    task = get_task("chem", "bace", data_root=data_dir, cache=cache)
    cfg = FinetuneConfig(dataset="bace", num_layer=2, emb_dim=16, epochs=1, progress=False, device="cpu")
    rec = finetune_seed(task, 0, cfg, "cpu")
    assert rec["compute_dtype"] == "float32"
    assert rec["hardware"]["cpu_capability"] == hardware.cpu_capability() == rec["runtime"]["cpu_capability"]
    assert set(rec["hardware"]["flags"]) == set(hardware.VECTOR_FLAGS)
    line = line_from_record(rec, experiment="x", row="none", baseline=None, checkpoint=None)
    assert line["compute_dtype"] == "float32" and line["cpu_capability"] == hardware.cpu_capability()
