"""Seeded random RAFT weights and inputs shared by the tests and /work/official/raft_compare.py.

The weights come from numpy's PCG64 (not torch's generator), filled key by key in sorted order, so the
official code and vidseg get the same tensors from the same seed on any machine.
"""

from __future__ import annotations

import numpy as np
import torch


def random_raft_state(keys_and_shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Random but well-scaled tensors for a RAFT state dict (conv weights ~ N(0, 1/fan_in), BN around 1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key in sorted(keys_and_shapes):
        shape = keys_and_shapes[key]
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros((), dtype=torch.long)
            continue
        if key.endswith("running_var"):
            arr = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean") or key.endswith("bias"):
            arr = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1:  # batch-norm weight
            arr = rng.uniform(0.5, 1.5, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            arr = rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape)
        out[key] = torch.from_numpy(arr.astype(np.float32))
    return out


def random_frames(height: int, width: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two RGB uint8 frames [H, W, 3]: a smooth random pattern and a shifted, noisy copy of it."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height // 4 + 4, width // 4 + 4, 3)).astype(np.float32)
    big = np.kron(base, np.ones((4, 4, 1), np.float32))
    a = big[:height, :width]
    b = big[2:height + 2, 3:width + 3] + rng.normal(0, 4, (height, width, 3))
    return a.clip(0, 255).astype(np.uint8), b.clip(0, 255).astype(np.uint8)
