"""The compute-dtype decision (``gnnpretrain.hardware``) and what run records say about the hardware.

The decision depends on the chip, and the chip under the tests cannot be switched, so the decision
tests substitute the probes (``cpu_flags`` / ``cpu_capability`` / ``cpu_model``) with the chips of
issue 18: an AVX2-only AMD EPYC (Zen 3), an AVX512-BF16 AMD EPYC (Zen 4) and an AMX Xeon. The
probes themselves are then called for real once, against ``/proc/cpuinfo`` where it exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gnnpretrain import hardware
from gnnpretrain.errors import UserError
from gnnpretrain.hardware import AmpDecision, Bf16UnsupportedError, hardware_info, resolve_amp

CHIPS = {
    "zen3_avx2": ("AMD EPYC 7B13", "AVX2", dict(avx2=True, avx512f=False, avx512_bf16=False, amx_bf16=False)),
    "zen4_avx512bf16": ("AMD EPYC 9B14", "AVX512", dict(avx2=True, avx512f=True, avx512_bf16=True, amx_bf16=False)),
    "spr_amx": ("Intel(R) Xeon(R) Platinum 8481C", "AVX512", dict(avx2=True, avx512f=True, avx512_bf16=True, amx_bf16=True)),
    "skylake_avx512": ("Intel(R) Xeon(R) Gold 6148", "AVX512", dict(avx2=True, avx512f=True, avx512_bf16=False, amx_bf16=False)),
}


@pytest.fixture
def chip(monkeypatch):
    """``chip(name)`` makes the probes report that CPU."""

    def use(name: str) -> None:
        model, capability, flags = CHIPS[name]
        monkeypatch.setattr(hardware, "cpu_model", lambda: model)
        monkeypatch.setattr(hardware, "cpu_capability", lambda: capability)
        monkeypatch.setattr(hardware, "cpu_flags", lambda: dict(flags))

    return use


@pytest.mark.parametrize("name,native", [("zen3_avx2", False), ("skylake_avx512", False), ("zen4_avx512bf16", True),
                                         ("spr_amx", True)])
def test_amp_runs_bf16_only_where_native(chip, name, native):
    """``--amp`` (True/"auto"): bf16 where avx512_bf16 or AMX exists, otherwise fp32 with a one-line
    reason naming the chip — AVX-512 without BF16 (Skylake) is not enough."""
    chip(name)
    d = resolve_amp(True, "cpu")
    assert d.native is native and d.requested == "auto"
    assert d.dtype == (torch.bfloat16 if native else torch.float32)
    assert d.enabled is native and d.fell_back is (not native)
    assert d.compute_dtype == ("bfloat16" if native else "float32")
    assert "\n" not in d.reason and CHIPS[name][0] in d.reason
    if not native:
        assert d.reason.startswith("--amp: running fp32") and CHIPS[name][1] in d.reason
    assert resolve_amp("auto", "cpu") == d and resolve_amp("on", "cpu") == d


def test_forced_bf16_is_refused_without_native_support(chip):
    chip("zen3_avx2")
    for forced in ("force", "bf16"):
        with pytest.raises(Bf16UnsupportedError, match="bf16 was forced but CPU AMD EPYC 7B13") as err:
            resolve_amp(forced, "cpu")
        assert isinstance(err.value, UserError) and "\n" not in str(err.value)
    chip("spr_amx")
    assert resolve_amp("force", "cpu") == AmpDecision(torch.bfloat16, True, resolve_amp("force", "cpu").reason, "force")


@pytest.mark.parametrize("off", [False, None, "off", "fp32"])
def test_no_amp_is_fp32_and_still_records_native(chip, off):
    chip("zen4_avx512bf16")
    d = resolve_amp(off, "cpu")
    assert d.dtype == torch.float32 and d.native is True and d.requested == "off" and not d.fell_back


def test_bad_request_is_a_value_error():
    with pytest.raises(ValueError, match="amp must be one of"):
        resolve_amp("fp16", "cpu")


def test_cuda_decision_uses_native_support_only(monkeypatch):
    """GPUs: ``torch.cuda.is_bf16_supported`` *without* emulation (pre-Ampere GPUs emulate bf16)."""
    monkeypatch.setattr(hardware, "_cuda_name", lambda device: "GPU Tesla T4")
    monkeypatch.setattr(hardware, "_cuda_bf16", lambda device: False)
    assert resolve_amp(True, "cuda").dtype == torch.float32
    with pytest.raises(Bf16UnsupportedError, match="Tesla T4"):
        resolve_amp("force", "cuda")
    monkeypatch.setattr(hardware, "_cuda_bf16", lambda device: True)
    assert resolve_amp(True, "cuda").dtype == torch.bfloat16


def test_hardware_info_of_a_mocked_chip(chip):
    chip("zen3_avx2")
    info = hardware_info("cpu")
    assert info["cpu_model"] == "AMD EPYC 7B13" and info["cpu_capability"] == "AVX2"
    assert info["flags"] == CHIPS["zen3_avx2"][2] and info["native_bf16"] is False
    assert json.loads(json.dumps(info)) == info  # plain JSON for records
    assert "flags avx2," in hardware.describe(info) and "native bf16 no" in hardware.describe(info)


def test_real_probes_agree_with_torch_and_proc():
    """The probes called for real: torch's capability string, every vector flag named, and the
    flags as ``/proc/cpuinfo`` lists them (where it exists); the decision is then consistent with them."""
    info = hardware_info()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(info["flags"]) == set(hardware.VECTOR_FLAGS) and info["cpu_model"]
    proc = Path("/proc/cpuinfo")
    if proc.is_file() and "flags" in proc.read_text():
        listed = set(next(ln for ln in proc.read_text().splitlines() if ln.startswith("flags")).split(":")[1].split())
        for flag in hardware.VECTOR_FLAGS:
            if flag in listed:
                assert info["flags"][flag], flag
    native = info["flags"]["avx512_bf16"] or info["flags"]["amx_bf16"]
    assert info["native_bf16"] is native
    d = resolve_amp(True, "cpu")
    assert d.enabled is native
    if not native:
        with pytest.raises(Bf16UnsupportedError):
            resolve_amp("force", "cpu")
