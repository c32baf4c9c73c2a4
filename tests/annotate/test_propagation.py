"""Keyframe label propagation: exact warps, bidirectional merge, and better than copying the nearest key frame."""

from __future__ import annotations

import numpy as np
import pytest

from vidseg.annotate import propagate_keyframes, warp_labels


def test_warp_labels_integer_shift_is_exact() -> None:
    rng = np.random.default_rng(0)
    src = rng.integers(0, 5, size=(12, 15)).astype(np.uint8)
    flow = np.zeros((12, 15, 2), np.float32)
    flow[..., 0] = -2  # target pixel x takes source x-2: content moves right by 2
    out, inside = warp_labels(src, flow)
    np.testing.assert_array_equal(out[:, 2:], src[:, :-2])
    assert (out[:, :2] == 255).all() and not inside[:, :2].any() and inside[:, 2:].all()


def _shift_flow(dx: float):
    def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # content moves +dx per frame
        sign = 1.0 if flow.order[(id(a), id(b))] > 0 else -1.0
        out = np.zeros(a.shape[:2] + (2,), np.float32)
        out[..., 0] = sign * dx
        return out
    flow.order = {}
    return flow


def test_bidirectional_merge_uses_nearer_key_frame_and_flags_spots() -> None:
    h, w, n = 10, 40, 7
    frames = [np.zeros((h, w, 3), np.uint8) + t for t in range(n)]
    flow = _shift_flow(2.0)
    for i in range(n):
        for j in range(n):
            flow.order[(id(frames[i]), id(frames[j]))] = j - i
    first = np.zeros((h, w), np.uint8)
    first[:, 5:10] = 3
    last = np.zeros((h, w), np.uint8)
    last[:, 5 + 2 * 6:10 + 2 * 6] = 4  # same object annotated with another class: a spot
    result = propagate_keyframes(frames, {0: first, 6: last}, flow)
    assert (result.labels[2][:, 9:14] == 3).all()  # nearer to frame 0
    assert (result.labels[5][:, 15:20] == 4).all()  # nearer to frame 6
    assert result.spots[3][:, 11:16].all() and not result.spots[0].any()


@pytest.mark.parametrize("seed", [1, 3])
def test_propagation_beats_nearest_key_frame_on_synthetic_video(seed: int) -> None:
    from vidseg.data.synth import SyntheticVideo

    video = SyntheticVideo((96, 160), 11, seed=seed)
    frames = [f for f in video]
    images = [f.image for f in frames]
    gt = [f.semantic for f in frames]
    result = propagate_keyframes(images, {0: gt[0], 10: gt[10]})

    def accuracy(pred: list[np.ndarray]) -> float:
        valid = [g != 255 for g in gt[1:10]]
        hits = sum(((p == g) & v).sum() for p, g, v in zip(pred[1:10], gt[1:10], valid))
        return hits / sum(v.sum() for v in valid)

    copy = [gt[0] if t <= 5 else gt[10] for t in range(11)]
    assert accuracy(result.labels) > accuracy(copy)
    assert accuracy(result.labels) > 0.9
