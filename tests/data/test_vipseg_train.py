"""VIPSeg panoptic training clips: one augmentation per clip, panoptic-id labels, official sizes and mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidseg.data.synth import generate
from vidseg.data.transforms import ClipData
from vidseg.data.vipseg_train import (
    PIXEL_MEAN,
    PadToDivisor,
    ResizeShortestEdge,
    shortest_edge_size,
    vipseg_train_dataset,
    vipseg_train_transform,
)
from vidseg.structures import decode_panoptic


@pytest.mark.parametrize(("hw", "short", "mx", "want"), [
    ((720, 1280), 608, 4096, (608, 1081)),     # 1280 * 608 / 720 = 1080.9 -> 1081
    ((720, 1280), 1440, 4096, (1440, 2560)),
    ((720, 1280), 1440, 2000, (1125, 2000)),   # long edge capped: 1440 * 2000 / 2560 = 1125
    ((1000, 500), 600, 4096, (1200, 600)),
])
def test_shortest_edge_size(hw, short, mx, want):
    assert shortest_edge_size(*hw, short, mx) == want


def _clip(h=40, w=60, t=3):
    frames = [np.full((h, w, 3), 10 * i, dtype=np.uint8) for i in range(t)]
    labels = [np.zeros((h, w), dtype=np.int32) for _ in range(t)]
    for i, lab in enumerate(labels):
        lab[:, : w // 2] = 2000 + i  # instance differs per frame: ids must survive resize/crop/flip
        lab[:, w // 2:] = 5000
    return ClipData(frames, labels, (0, 1, 2), "v")


def test_one_draw_per_clip_and_ids_kept():
    tf = vipseg_train_transform(short_edges=(64, 80, 96), max_size=4096, crop=64)
    clip = tf(_clip(), np.random.default_rng(3))
    assert clip.frames.shape[1:] == (3, 64, 64) and clip.labels.shape == (3, 64, 64)
    ids = [set(torch.unique(clip.labels[i]).tolist()) for i in range(3)]
    assert all(i <= {2000 + t, 5000} for t, i in enumerate(ids))
    left = [clip.labels[i] == 2000 + i for i in range(3)]  # same geometry on every frame
    assert torch.equal(left[0], left[1]) and torch.equal(left[1], left[2])
    # pixel mean subtracted, std 1: frame i had value 10 i everywhere
    for i in range(3):
        want = torch.tensor([10 * i - m for m in PIXEL_MEAN]).view(3, 1, 1)
        assert torch.allclose(clip.frames[i], want.expand(3, 64, 64))


def test_resize_draws_from_the_list():
    rs = ResizeShortestEdge((50, 80), 4096)
    seen = set()
    for s in range(20):
        out = rs(_clip(), np.random.default_rng(s))
        seen.add(out.size)
    assert seen == {(50, 75), (80, 120)}


def test_pad_to_divisor_pads_labels_with_void():
    out = PadToDivisor(32)(_clip(40, 60), np.random.default_rng(0))
    assert out.size == (64, 64)
    assert (out.labels[0][40:] == 0).all() and (out.labels[0][:, 60:] == 0).all()


def test_dataset_on_synthetic_vipseg(tmp_path):
    root = tmp_path / "vipseg"
    generate("vipseg", root, videos=2, frames=4, size=(64, 96), seed=1, val_fraction=0.0, overwrite=True,
             progress=False)
    ds = vipseg_train_dataset(root, "train", transform=vipseg_train_transform((64,), 4096, 64), seed=5)
    clip = ds[0]
    assert clip.frames.shape == (3, 3, 64, 64)
    assert list(clip.frame_indices) == sorted(clip.frame_indices) and clip.frame_indices[0] < 2
    video = ds.videos[0]
    cat, inst = decode_panoptic(clip.labels.numpy())
    assert (inst[cat != 255] >= 0).all() and (cat[cat != 255] < 124).all()
    assert (inst > 0).any()  # things are carried as instances
    # same seed, same item -> same clip
    again = ds[0]
    assert torch.equal(again.labels, clip.labels) and torch.equal(again.frames, clip.frames)
    assert len(video) == 4
