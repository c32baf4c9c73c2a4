"""Training precision: ``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 where the device computes it natively).

``auto`` resolves once per run to ``bf16`` on a CUDA device that supports bfloat16 (Ampere and newer) and on a CPU
with native bfloat16 matrix instructions (AMX-BF16 or AVX512-BF16, as reported by PyTorch), else to ``fp32``.
Elsewhere bf16 autocast is emulated and slower than fp32, which is why it is not simply the default everywhere.
The CFFM recipes use ``auto``: there bf16 autocast was 1.16-1.36x faster per CFFM-B0 training step with losses
within 1e-5 (relative) of fp32's (docs/benchmarks.md, "Training step"); recipes where it was not faster keep
``fp32``.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16", "auto")


def native_bf16(device: torch.device) -> bool:
    """True when ``device`` runs bfloat16 matrix products natively (not emulated through float32)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        cpu = torch.cpu
        return bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)()
                    or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``: the configured precision with ``auto`` decided for ``device``."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 when the resolved ``precision`` is ``bf16``, else a no-op context."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
