"""Clip-consistent transforms: one draw per clip, mmseg semantics, reproducible from the generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidseg.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClipData,
    Compose,
    Pad,
    PhotoMetricDistortion,
    PhotoParams,
    RandomCrop,
    RandomFlip,
    RandomScale,
    Resize,
    aligned_size,
    apply_photometric,
    cffm_train_transform,
    normalize_frames,
    rescale_size,
    tcb_train_transform,
)


def _coord_clip(h=60, w=90, t=3):
    """Frames whose pixels encode their position (R = y, G = x) plus the frame number (B)."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [np.stack([yy % 256, xx % 256, np.full_like(yy, i)], -1).astype(np.uint8) for i in range(t)]
    labels = [((yy // 10 + xx // 10) % 5).astype(np.uint8) for _ in range(t)]
    return ClipData(frames, labels, tuple(range(t)), "v")


def test_rescale_and_aligned_size():
    assert rescale_size((480, 854), (853, 480)) == (479, 853)  # mmcv.imrescale rounds 479.4
    assert rescale_size((720, 1280), (853, 480)) == (480, 853)
    assert rescale_size((100, 100), (853, 480)) == (480, 480)
    assert aligned_size((480, 854), (853, 480)) == (480, 864)
    assert aligned_size((481, 857), None, 32) == (512, 864)


def test_resize_ratio_range_keeps_ratio_and_is_shared():
    clip = _coord_clip(240, 427)
    sizes = []
    for seed in range(30):
        out = Resize((853, 480), (0.5, 2.0))(clip, np.random.default_rng(seed))
        assert len({f.shape for f in out.frames}) == 1
        assert out.labels[0].shape == out.frames[0].shape[:2]
        h, w = out.size
        assert abs(w / h - 427 / 240) < 0.02
        sizes.append(h)
        assert set(np.unique(out.labels[-1])) <= set(range(5))  # nearest keeps label values
    assert min(sizes) >= 240 - 2 and max(sizes) <= 960 + 2
    assert max(sizes) - min(sizes) > 300


def test_random_scale_discrete():
    clip = _coord_clip(100, 50)
    hs = {RandomScale()(clip, np.random.default_rng(s)).size for s in range(60)}
    assert hs == {(80, 40), (100, 50), (150, 75), (200, 100)}


def test_crop_box_is_shared_across_frames():
    clip = _coord_clip(60, 90)
    out = RandomCrop((32, 40))(clip, np.random.default_rng(3))
    assert out.size == (32, 40)
    y0, x0 = int(out.frames[0][0, 0, 0]), int(out.frames[0][0, 0, 1])
    for i, (f, lab) in enumerate(zip(out.frames, out.labels, strict=True)):
        assert (f[..., 2] == i).all()
        np.testing.assert_array_equal(f[..., :2], clip.frames[i][y0:y0 + 32, x0:x0 + 40, :2])
        np.testing.assert_array_equal(lab, clip.labels[i][y0:y0 + 32, x0:x0 + 40])


def test_crop_cat_max_ratio_checked_on_target_label():
    h, w = 100, 100
    target = np.zeros((h, w), np.uint8)
    target[:, 50:] = 1  # crops of width 40 are mixed only if they straddle x = 50
    target[:5, :5] = 255
    first = np.full((h, w), 7, np.uint8)  # the non-target label is uniform: it must not be used
    frames = [np.zeros((h, w, 3), np.uint8)] * 2
    clip = ClipData(frames, [first, target])
    crop = RandomCrop((40, 40), cat_max_ratio=0.75)
    for seed in range(40):
        out = crop(clip, np.random.default_rng(seed))
        vals, counts = np.unique(out.labels[-1], return_counts=True)
        counts = counts[vals != 255]
        assert len(counts) == 2 and counts.max() / counts.sum() < 0.75
    # infeasible: gives up after its retries and still returns a crop of the right size
    uniform = ClipData(frames, [first, first])
    assert crop(uniform, np.random.default_rng(0)).size == (40, 40)


def test_flip_shared_and_consistent():
    clip = _coord_clip(20, 30)
    flipped = [RandomFlip(0.5)(clip, np.random.default_rng(s)) for s in range(20)]
    kinds = set()
    for out in flipped:
        is_flipped = out.frames[0][0, 0, 1] == 29
        kinds.add(bool(is_flipped))
        for i in range(3):
            ref = clip.frames[i][:, ::-1] if is_flipped else clip.frames[i]
            np.testing.assert_array_equal(out.frames[i], ref)
            refl = clip.labels[i][:, ::-1] if is_flipped else clip.labels[i]
            np.testing.assert_array_equal(out.labels[i], refl)
    assert kinds == {True, False}


def test_photometric_steps_match_definitions():
    img = np.array([[[100, 200, 10]]], np.uint8)
    bright = apply_photometric(img, PhotoParams(30.0, None, True, None, None))
    np.testing.assert_array_equal(bright, [[[130, 230, 40]]])
    contrast = apply_photometric(img, PhotoParams(None, 1.5, True, None, None))
    np.testing.assert_array_equal(contrast, [[[150, 255, 15]]])
    dark = apply_photometric(img, PhotoParams(-50.0, None, True, None, None))
    np.testing.assert_array_equal(dark, [[[50, 150, 0]]])
    gray = np.full((1, 1, 3), 120, np.uint8)  # saturation has no effect on gray, hue neither
    np.testing.assert_array_equal(apply_photometric(gray, PhotoParams(None, None, True, 0.3, 40)), gray)
    red = np.array([[[255, 0, 0]]], np.uint8)  # hue + 60 (OpenCV units of 2 degrees) = 120 deg: green
    green = apply_photometric(red, PhotoParams(None, None, True, None, 60))
    np.testing.assert_array_equal(green, [[[0, 255, 0]]])
    # contrast before or after the colour steps: differs once clipping is involved
    a = apply_photometric(img, PhotoParams(None, 2.0, True, 0.5, None))
    b = apply_photometric(img, PhotoParams(None, 2.0, False, 0.5, None))
    assert not np.array_equal(a, b)


def test_photometric_per_clip_vs_per_frame():
    rng_img = np.random.default_rng(0)
    base = rng_img.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    clip = ClipData([base.copy() for _ in range(4)])
    per_clip = PhotoMetricDistortion(per_frame=False)
    per_frame = PhotoMetricDistortion(per_frame=True)
    n_diff = 0
    for s in range(10):
        out = per_clip(clip, np.random.default_rng(s))
        assert all(np.array_equal(out.frames[0], f) for f in out.frames)
        out2 = per_frame(clip, np.random.default_rng(s))
        n_diff += not all(np.array_equal(out2.frames[0], f) for f in out2.frames)
    assert n_diff >= 8


def test_pad_and_normalize():
    clip = ClipData([np.full((3, 4, 3), 200, np.uint8)], [np.zeros((3, 4), np.uint8)])
    out = Pad((5, 6))(clip, np.random.default_rng(0))
    assert out.size == (5, 6)
    assert (out.labels[0][3:] == 255).all() and (out.labels[0][:, 4:] == 255).all()
    assert (out.labels[0][:3, :4] == 0).all()
    assert (out.frames[0][3:] == 0).all()
    x = normalize_frames(np.full((2, 3, 3), 200, np.uint8))
    assert x.shape == (3, 2, 3) and x.dtype == torch.float32
    for c in range(3):
        assert torch.allclose(x[c], torch.tensor((200 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]))


@pytest.mark.parametrize("make", [cffm_train_transform, tcb_train_transform])
def test_presets_produce_fixed_size_reproducible_clips(make):
    clip = _coord_clip(120, 213, t=4)
    pipe = make(crop=96)
    a = pipe(clip, np.random.default_rng(5))
    b = pipe(clip, np.random.default_rng(5))
    assert a.frames.shape == (4, 3, 96, 96) and a.labels.shape == (4, 96, 96)
    assert a.labels.dtype == torch.int64
    assert torch.equal(a.frames, b.frames) and torch.equal(a.labels, b.labels)
    assert a.video == "v" and a.frame_indices == (0, 1, 2, 3)
    c = pipe(clip, np.random.default_rng(6))
    assert not torch.equal(a.frames, c.frames)


def test_bad_clip_shapes():
    with pytest.raises(ValueError):
        ClipData([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)])
    with pytest.raises(ValueError):
        ClipData([np.zeros((4, 4, 3), np.uint8)], [np.zeros((4, 5), np.uint8)])
    assert Compose(())(ClipData([np.zeros((4, 4, 3), np.uint8)]), np.random.default_rng(0)).labels is None
