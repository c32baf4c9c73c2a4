"""Deterministic weights and inputs shared by the STCNN tests and the official comparison script.

``/work/official/stcnn_compare.py`` (outside the repository) loads the same :func:`seeded_state` into the
official network and into vidseg's and records the outputs' fingerprints; the slow tests rebuild them here.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

import torch


def seeded_state(state: Mapping[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float64 values for every tensor of ``state``, in sorted key order, from ``seed``.

    BN weights and running variances ~ U(0.5, 1.5), running means and other 1-D tensors (biases) ~ N(0, 0.1^2),
    weights ~ N(0, 1 / fan) with fan = numel / shape[0]; ``num_batches_tracked`` is kept.
    """
    gen = torch.Generator().manual_seed(seed)
    bn_modules = {k.rsplit(".", 1)[0] for k in state if k.endswith("running_mean")}
    out = {}
    for key in sorted(state):
        value = state[key]
        module, _, leaf = key.rpartition(".")
        shape = tuple(value.shape)
        if leaf == "num_batches_tracked":
            out[key] = value.clone()
        elif leaf == "running_var" or (module in bn_modules and leaf == "weight"):
            out[key] = 0.5 + torch.rand(shape, generator=gen, dtype=torch.float64)
        elif len(shape) == 1:
            out[key] = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            fan = value.numel() // shape[0]
            out[key] = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(fan)
    return out


def seeded_inputs(batch: int, height: int, width: int, frame_nums: int = 4, seed: int = 1
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(stack [B, 3*delta, H, W] uniform in [-1, 1], frame [B, 3, H, W] standard normal), float64."""
    gen = torch.Generator().manual_seed(seed)
    stack = torch.rand((batch, 3 * frame_nums, height, width), generator=gen, dtype=torch.float64) * 2 - 1
    frame = torch.randn((batch, 3, height, width), generator=gen, dtype=torch.float64)
    return stack, frame


def layout_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of the sorted ``"key shape"`` lines: equal digests mean identical key names and shapes."""
    lines = sorted(f"{k} {tuple(v.shape)}" for k, v in state.items())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def fingerprint(t: torch.Tensor) -> tuple[float, float, float]:
    """(sum, sum of |x|, x at the flat index numel // 3) of a tensor, as floats."""
    flat = t.detach().reshape(-1)
    return float(flat.sum()), float(flat.abs().sum()), float(flat[flat.numel() // 3])
