"""What the processor can do, and the compute dtype that follows from it.

Why this module exists: bf16 is only fast where the hardware multiplies bf16 natively. On an x86 CPU
that means the AVX512-BF16 or AMX-BF16 extensions; without them ATen runs bf16 matmuls through a
scalar fallback (``cpublas_gemm_impl`` / ``bf16_dot_with_fp32_arith``), measured ~9x *slower* than
fp32 on an AVX2-only AMD EPYC (issue 18). So ``--amp`` must never mean "bf16 whatever it costs":

* :func:`resolve_amp` turns a request (``--amp`` = "bf16 where native", or a forced bf16) and a
  device into an :class:`AmpDecision`: bf16 where native; fp32 with a one-line reason where not; a
  forced bf16 without native support is refused (:class:`Bf16UnsupportedError`, a
  :class:`~gnnpretrain.errors.UserError`: one ``error:`` line, exit 2).
* :func:`hardware_info` is the dict that run records carry (CPU model, torch's CPU capability, the
  vector flags that decide speed, whether bf16 is native), so every speed figure and every result
  can be traced to the chip that produced it.

Detection uses torch's own view first (``torch.backends.cpu.get_cpu_capability()``,
``torch.cpu.get_capabilities()`` / ``torch.cpu._is_avx512_bf16_supported()`` — what ATen and oneDNN
dispatch on), and ``/proc/cpuinfo`` for the model name and family where it exists. Every probe is
its own small function so tests can substitute a different chip (the real one cannot be switched).
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gnnpretrain.errors import UserError

__all__ = ["AmpDecision", "Bf16UnsupportedError", "resolve_amp", "hardware_info", "native_bf16", "cpu_capability",
           "cpu_model", "cpu_flags", "describe", "VECTOR_FLAGS", "AMP_CHOICES"]

#: The vector extensions that decide CPU speed here: fp32 width (avx2 / avx512f) and native bf16
#: (avx512_bf16, amx_bf16). Reported in this order.
VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")

#: Accepted values of ``requested`` in :func:`resolve_amp` (besides ``True`` / ``False`` / ``None``).
#: ``"auto"`` / ``"on"``: bf16 where native, else fp32 (``--amp``); ``"force"`` / ``"bf16"``: bf16 or
#: an error; ``"off"`` / ``"fp32"``: fp32.
AMP_CHOICES = ("off", "fp32", "auto", "on", "force", "bf16")

_CPUINFO = Path("/proc/cpuinfo")


class Bf16UnsupportedError(UserError, ValueError):
    """bf16 was forced on a device without native bf16 (it would run a slow emulated fallback)."""


@dataclass(frozen=True)
class AmpDecision:
    """The compute dtype a run uses and why.

    ``dtype``: ``torch.bfloat16`` (autocast / bf16 products) or ``torch.float32``; ``native``:
    whether the device multiplies bf16 natively (recorded even when fp32 was asked for);
    ``reason``: one line for the log (what was asked, what runs, why); ``requested``: the
    normalised request (``"off"``, ``"auto"`` or ``"force"``).
    """

    dtype: torch.dtype
    native: bool
    reason: str
    requested: str = "off"

    @property
    def enabled(self) -> bool:
        """True when the run computes in bf16 (what ``amp=`` flags of the training code take)."""
        return self.dtype == torch.bfloat16

    @property
    def compute_dtype(self) -> str:
        """``"bfloat16"`` or ``"float32"``: the name records carry."""
        return str(self.dtype).removeprefix("torch.")

    @property
    def fell_back(self) -> bool:
        """bf16 was asked for (``--amp``) but fp32 runs because bf16 is not native here."""
        return self.requested == "auto" and not self.enabled


# ------------------------------------------------------------------------------------------ probes
@functools.cache
def _cpuinfo_fields() -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = _CPUINFO.read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # first processor only
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_capability() -> str:
    """torch's CPU dispatch level (``"AVX512"``, ``"AVX2"``, ``"DEFAULT"``, ``"SVE256"``, ...): the
    vectorised ATen kernels this process actually runs."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # very old torch, or a build without the probe
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else torch's cpuinfo, else ``platform``).

    Some virtual machines report only a family name (``"AMD EPYC"``); the family and model numbers
    of :func:`hardware_info` then tell the generation."""
    fields = _cpuinfo_fields()
    name = fields.get("model name") or fields.get("Model") or fields.get("Hardware")
    if not name:
        name = _torch_capabilities().get("cpu_name")
    return str(name or platform.processor() or platform.machine() or "unknown")


@functools.cache
def _torch_capabilities() -> dict[str, Any]:
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is None:
        return {}
    try:
        return dict(get())
    except Exception:
        return {}


def cpu_flags() -> dict[str, bool]:
    """The :data:`VECTOR_FLAGS` of this CPU: from ``/proc/cpuinfo`` where it lists flags, OR-ed with
    torch's own cpuinfo (which also works where ``/proc`` does not exist)."""
    listed = set(_cpuinfo_fields().get("flags", "").split())
    caps = _torch_capabilities()
    torch_names = {"avx2": "avx2", "avx512f": "avx512_f", "avx512_bf16": "avx512_bf16", "amx_bf16": "amx_bf16"}
    out = {}
    for flag in VECTOR_FLAGS:
        out[flag] = flag in listed or bool(caps.get(torch_names[flag], False))
    if not out["avx512_bf16"]:
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        out["avx512_bf16"] = bool(probe()) if probe is not None else False
    return out


def _cuda_bf16(device: torch.device) -> bool:
    """Native (not emulated) bf16 on this CUDA device: compute capability 8.0 (Ampere) or newer."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # older torch: no emulation argument
        return bool(torch.cuda.is_bf16_supported())


def native_bf16(device: str | torch.device = "cpu") -> tuple[bool, str]:
    """Whether ``device`` multiplies bf16 natively, and a short phrase saying how it was decided.

    CPU: the avx512_bf16 or amx_bf16 extension (x86); other CPUs are treated as not native (bf16
    speed there is not measured by this project). CUDA: ``torch.cuda.is_bf16_supported`` without
    emulation."""
    device = torch.device(device)
    if device.type == "cuda":
        if _cuda_bf16(device):
            return True, f"{_cuda_name(device)} has native bf16"
        return False, f"{_cuda_name(device)} has no native bf16 (needs compute capability 8.0+)"
    if device.type != "cpu":
        return False, f"bf16 speed on {device.type} is not measured by this project"
    flags = cpu_flags()
    have = [f for f in ("amx_bf16", "avx512_bf16") if flags[f]]
    if have:
        return True, f"CPU {cpu_model()} has {' and '.join(have)}"
    return False, (f"CPU {cpu_model()} (torch capability {cpu_capability()}) has no avx512_bf16/amx_bf16, "
                   "so bf16 would run ATen's scalar fallback (measured ~9x slower than fp32)")


def _cuda_name(device: torch.device) -> str:
    try:
        return f"GPU {torch.cuda.get_device_name(device)}"
    except Exception:
        return f"GPU {device}"


# --------------------------------------------------------------------------------------- decision
def _normalise(requested: bool | str | None) -> str:
    if requested is None or requested is False:
        return "off"
    if requested is True:
        return "auto"
    value = str(requested).strip().lower()
    if value not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)} (or True/False), got {requested!r}")
    return {"off": "off", "fp32": "off", "auto": "auto", "on": "auto", "force": "force", "bf16": "force"}[value]


def resolve_amp(requested: bool | str | None, device: str | torch.device = "cpu") -> AmpDecision:
    """The compute dtype for a run that asked for ``requested`` on ``device``.

    * ``False`` / ``None`` / ``"off"`` / ``"fp32"``: fp32.
    * ``True`` / ``"auto"`` / ``"on"`` (what ``--amp`` means): bf16 where it is native, else fp32 —
      the reason says so in one line, to be logged by the caller.
    * ``"force"`` / ``"bf16"`` (an explicit ``--amp-dtype bf16``): bf16 where native; elsewhere
      :class:`Bf16UnsupportedError` (the emulated path is never run, silently or not).
    """
    mode = _normalise(requested)
    device = torch.device(device)
    native, why = native_bf16(device)
    if mode == "off":
        return AmpDecision(torch.float32, native, "fp32 (bf16 not requested)", mode)
    if native:
        return AmpDecision(torch.bfloat16, True, f"bf16: {why}", mode)
    if mode == "force":
        raise Bf16UnsupportedError(
            f"bf16 was forced but {why}; run without the bf16 option (plain --amp falls back to fp32 by itself)")
    return AmpDecision(torch.float32, False, f"--amp: running fp32, not bf16: {why}", mode)


# --------------------------------------------------------------------------------------- records
def hardware_info(device: str | torch.device | None = None) -> dict[str, Any]:
    """What run records and benchmark outputs carry about the hardware (plain JSON types).

    ``cpu_model``, ``cpu_vendor`` / ``cpu_family`` / ``cpu_model_number`` (``/proc/cpuinfo``; tell a
    generation apart when the name is generic), ``cpu_capability`` (torch's dispatch level),
    ``flags`` (:data:`VECTOR_FLAGS` -> bool), ``native_bf16`` (of the CPU, or of ``device`` when it
    is a GPU), ``machine``, and ``gpu`` (name) for a CUDA ``device``."""
    fields = _cpuinfo_fields()
    dev = torch.device(device) if device is not None else torch.device("cpu")
    native, _ = native_bf16(dev)
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_vendor": fields.get("vendor_id"),
        "cpu_family": fields.get("cpu family"),
        "cpu_model_number": fields.get("model"),
        "cpu_capability": cpu_capability(),
        "flags": cpu_flags(),
        "native_bf16": native,
        "machine": platform.machine(),
    }
    if dev.type == "cuda":
        info["gpu"] = _cuda_name(dev).removeprefix("GPU ")
    return info


def describe(info: dict[str, Any] | None = None) -> str:
    """One line naming the hardware: model, capability and the flags present (for logs and benchmarks)."""
    info = info or hardware_info()
    flags = [f for f, on in info["flags"].items() if on]
    gen = ""
    if info.get("cpu_family") and info.get("cpu_model_number"):
        gen = f" (family {info['cpu_family']}, model {info['cpu_model_number']})"
    gpu = f"; GPU {info['gpu']}" if info.get("gpu") else ""
    return (f"{info['cpu_model']}{gen}, torch CPU capability {info['cpu_capability']}, "
            f"flags {'+'.join(flags) or 'none of ' + '/'.join(VECTOR_FLAGS)}, "
            f"native bf16 {'yes' if info['native_bf16'] else 'no'}{gpu}")
