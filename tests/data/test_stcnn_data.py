"""STCNN stage datasets: official sample lists, clip layout, augmentation consistency, folder pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidseg.categories import davis_db_info
from vidseg.data.davis import scan_davis
from vidseg.data.stcnn_data import (
    DreamClips,
    FramePredClips,
    ImageMaskPairs,
    JointClips,
    flip_scale_rotate,
    frame_folders,
    framepred_sample_list,
    image_mask_pairs,
    joint_sample_list,
)
from vidseg.data.synth import generate
from vidseg.errors import DataError


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stcnn_data") / "davis"
    generate("davis", root, videos=2, frames=7, size=(48, 64), seed=0, val_fraction=0.5, progress=False)
    return root


def test_joint_sample_list_matches_the_official_script_for_delta_4() -> None:
    # the lines data/get_davis16_sample_list_4.py writes for a 7-frame video (frame indices)
    expected = [((0, 1, 2, 3), 4), ((1, 2, 3, 4), 5), ((2, 3, 4, 5), 6),
                ((0, 0, 0, 0), 1), ((0, 0, 0, 1), 2), ((0, 0, 1, 2), 3),
                ((4, 3, 2, 1), 0), ((5, 4, 3, 2), 1), ((6, 5, 4, 3), 2)]
    assert joint_sample_list(7, 4) == expected
    for delta in (3, 5, 6):
        for stack, target in joint_sample_list(9, delta):
            assert len(stack) == delta and target not in stack


@pytest.mark.parametrize(("delta", "official_lines"), [(3, 4068), (4, 4008), (5, 3978), (6, 3948)])
def test_joint_sample_list_sizes_match_the_official_files(delta: int, official_lines: int) -> None:
    # official_lines: `wc -l data/DAVIS16_samples_list{_3,,_5,_6}.txt` of longyin880815/STCNN (DAVIS16 train)
    info = davis_db_info()["sequences"]
    lengths = [s["num_frames"] for s in info if s["set"] == "train" and s["year"] == 2016]
    assert len(lengths) == 30
    assert sum(len(joint_sample_list(n, delta)) for n in lengths) == official_lines


def test_framepred_sample_list_forward_and_reversed() -> None:
    samples = framepred_sample_list(6, 3)
    assert samples[:3] == [((0, 1, 2), 3), ((1, 2, 3), 4), ((2, 3, 4), 5)]
    assert samples[3:] == [((5, 4, 3), 2), ((4, 3, 2), 1), ((3, 2, 1), 0)]
    assert all(t not in s for s, t in samples)


def test_joint_clips_layout(davis_root: Path) -> None:
    videos, _ = scan_davis(davis_root, 2016, "train")
    ds = JointClips(videos, delta=3, size=(40, 56), augment=False)
    assert len(ds) == sum(len(joint_sample_list(len(v), 3)) for v in videos)
    clip = ds.get(0, np.random.default_rng(0))
    assert clip.frames.shape == (4, 3, 40, 56) and clip.labels.shape == (4, 40, 56)
    assert float(clip.frames.max()) > 1.0 and float(clip.frames.min()) >= 0.0  # raw 0..255
    assert (clip.labels[:-1] == 255).all() and set(clip.labels[-1].unique().tolist()) <= {0, 1, 255}
    stack, target = ds.samples[0][1], ds.samples[0][2]
    assert clip.frame_indices == (*stack, target)


def test_augmentation_moves_frames_and_mask_together() -> None:
    img = np.zeros((40, 60, 3), np.float32)
    img[10:20, 30:45] = 200.0
    mask = np.zeros((40, 60), np.uint8)
    mask[10:20, 30:45] = 1
    for seed in range(5):
        (a, b), m = flip_scale_rotate([img, img.copy()], mask, np.random.default_rng(seed))
        assert np.array_equal(a, b)
        inside = m == 1
        assert inside.any() and a[..., 0][inside].mean() > 150 and a[..., 0][~inside].mean() < 20


def test_dream_clips_repeat_the_image(davis_root: Path) -> None:
    video = scan_davis(davis_root, 2017, "val")[0][0]
    image, ids = video.load_sample(0)
    ds = DreamClips(image, ids, delta=3, count=4, seed=0, augment=False)
    clip = ds.get(1, np.random.default_rng(0))
    assert clip.frames.shape == (4, 3, *image.shape[:2])
    assert all(np.array_equal(clip.frames[0].numpy(), clip.frames[k].numpy()) for k in range(4))
    assert set(clip.labels[-1].unique().tolist()) <= {0, 1} and clip.labels[-1].sum() > 0
    again = DreamClips(image, ids, delta=3, count=4, seed=0, augment=False).get(1, np.random.default_rng(0))
    assert np.array_equal(again.frames.numpy(), clip.frames.numpy())


def test_framepred_clips(davis_root: Path) -> None:
    videos = frame_folders(davis_root)
    ds = FramePredClips(videos, delta=3, size=(32, 48))
    assert len(ds) == sum(len(framepred_sample_list(len(f), 3)) for _, f in videos)
    clip = ds.get(len(ds) - 1, np.random.default_rng(0))
    assert clip.frames.shape == (4, 3, 32, 48) and (clip.labels == 255).all()


def test_image_mask_pairs(tmp_path: Path) -> None:
    for name in ("a", "b"):
        Image.fromarray(np.full((30, 40, 3), 100, np.uint8)).save(tmp_path / f"{name}.jpg")
        m = np.zeros((30, 40), np.uint8)
        m[5:20, 10:30] = 255
        Image.fromarray(m).save(tmp_path / f"{name}.png")
    pairs = image_mask_pairs(tmp_path)
    assert [p[0].stem for p in pairs] == ["a", "b"]
    clip = ImageMaskPairs(pairs, crop=32).get(0, np.random.default_rng(0))
    assert clip.frames.shape == (1, 3, 32, 32)
    assert set(clip.labels[0].unique().tolist()) <= {0, 1, 255} and (clip.labels[0] == 1).any()
    (tmp_path / "b.png").unlink()
    with pytest.raises(DataError, match="no mask"):
        image_mask_pairs(tmp_path)
