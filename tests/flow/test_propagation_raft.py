"""Keyframe label propagation with RAFT as its flow (``propagate_keyframes(..., flow=RAFTFlow(W))``)."""

from __future__ import annotations

import numpy as np
import torch

from vidseg.annotate import propagate_keyframes
from vidseg.flow import RAFTFlow, build_raft

from .raft_reference import random_raft_state


class Recording:
    """Counts the frame pairs a backend is asked for."""

    def __init__(self, backend) -> None:
        self.backend, self.calls = backend, 0

    def __call__(self, a, b):
        self.calls += 1
        return self.backend(a, b)


def test_propagation_runs_on_raft_flow(tmp_path):
    shapes = {k: tuple(v.shape) for k, v in build_raft("small").state_dict().items()}
    state = random_raft_state(shapes, seed=4321)
    for key in ("update_block.flow_head.conv2.weight", "update_block.flow_head.conv2.bias"):
        state[key] = state[key] * 0.0  # a zero flow head: RAFT returns exactly zero flow
    torch.save({"module." + k: v for k, v in state.items()}, tmp_path / "raft-small.pth")
    flow = Recording(RAFTFlow(tmp_path / "raft-small.pth", iters=1))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(3)]
    key = rng.integers(0, 5, (128, 128)).astype(np.uint8)
    out = propagate_keyframes(frames, {0: key}, flow=flow)
    assert flow.calls == 4  # frames 1 and 2: flow to the previous frame and back
    # zero flow carries the key frame unchanged, and every pixel stays confident
    for t in (1, 2):
        np.testing.assert_array_equal(out.labels[t], key)
        assert out.confident[t].all()
