"""Which CPU a number was measured on: its model name and the vector instruction set its kernels use.

Floating-point results and latencies depend on the CPU's vector ISA (PyTorch's ATen, oneDNN, MKL,
OpenVINO and ncnn pick their code paths by it), so every latency and every training record names
it. The ISA is the highest of AMX > AVX-512 > AVX2 > AVX > SSE4.2 (x86-64) or SVE > NEON (ARM)
that the kernel reports in ``/proc/cpuinfo`` flags, with " BF16" after AMX or AVX-512 when the CPU has bfloat16
instructions (on other systems: PyTorch's own
``torch.backends.cpu.get_cpu_capability()``, imported only there).
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

__all__ = ["cpu_model", "cpu_isa", "cpu_summary"]

# flag in /proc/cpuinfo -> the name the field uses, highest first
_ISA_FLAGS = (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
              ("sse4_2", "SSE4.2"), ("sve", "SVE"), ("asimd", "NEON"), ("neon", "NEON"))


@functools.cache
def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in info:  # the first processor's entry
            info[key.strip()] = value.strip()
    return info


@functools.cache
def cpu_model() -> str:
    """The CPU's model name, e.g. ``"AMD EPYC 7B13"`` (``platform.processor()`` where /proc/cpuinfo is absent)."""
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine()


@functools.cache
def cpu_isa() -> str:
    """The highest vector ISA of this CPU: ``"AMX BF16"``, ``"AVX-512"``, ``"AVX-512 BF16"``, ``"AVX2"``,
    ``"NEON"``, ... (see module doc)."""
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    for flag, name in _ISA_FLAGS:
        if flag in flags:
            # bf16 units change runtimes' defaults: OpenVINO's CPU plugin then infers in bf16 unless told f32
            return name + (" BF16" if name in ("AMX", "AVX-512") and flags & {"avx512_bf16", "amx_bf16"} else "")
    try:
        import torch

        return torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - a description must never fail
        return "unknown ISA"


def cpu_summary(threads: int | None = None) -> str:
    """``"AMD EPYC 7B13, AVX2, 2 cores"`` (with ``threads``: ``"..., 1 thread"``): what every latency record names."""
    text = f"{cpu_model()}, {cpu_isa()}, {os.cpu_count()} cores"
    if threads is not None:
        text += f", {threads} thread" + ("" if threads == 1 else "s")
    return text
