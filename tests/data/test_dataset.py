"""ClipDataset: sampler + transform over reader video records, reproducible per (seed, epoch, index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidseg.data.dataset import ClipDataset
from vidseg.data.sampling import CFFMSampler, ConsecutiveSampler, TCBSampler
from vidseg.data.transforms import cffm_train_transform
from vidseg.structures import ClipBatch


class FakeVideo:
    """Frame i is filled with value i (all channels); label i is i % 7 everywhere."""

    def __init__(self, name: str, n: int, h: int = 24, w: int = 32, labelled: bool = True) -> None:
        self.name, self.n, self.h, self.w, self.has_labels = name, n, h, w, labelled
        self.loaded: list[int] = []

    def __len__(self) -> int:
        return self.n

    def load_frame(self, i: int) -> np.ndarray:
        if not 0 <= i < self.n:
            raise IndexError(i)
        self.loaded.append(i)
        return np.full((self.h, self.w, 3), i, np.uint8)

    def load_label(self, i: int) -> np.ndarray:
        return np.full((self.h, self.w), i % 7, np.uint8)


def _frame_ids(clip):
    # the normalisation is affine per channel: recover the fill value from channel 0
    return [round(float(f[0, 0, 0]) * 58.395 + 123.675) for f in clip.frames]


def test_test_mode_enumerates_every_target():
    videos = [FakeVideo("a", 12), FakeVideo("b", 5)]
    ds = ClipDataset(videos, CFFMSampler(), train=False)
    assert len(ds) == 17
    clip = ds[11]
    assert clip.video == "a" and clip.frame_indices == (2, 5, 8, 11)
    assert _frame_ids(clip) == [2, 5, 8, 11]
    assert clip.labels[:, 0, 0].tolist() == [2, 5, 1, 4]
    assert ds[12].frame_indices == (0,) and ds[12].video == "b"
    assert ds[15].frame_indices == (0, 1, 2, 3)
    with pytest.raises(IndexError):
        ds[17]


def test_train_mode_reproducible_per_epoch_and_index():
    videos = [FakeVideo("a", 30), FakeVideo("b", 40)]
    ds = ClipDataset(videos, TCBSampler(), repeat=3, seed=1)
    assert len(ds) == 6
    first = [ds[i].frame_indices for i in range(6)]
    assert [ds[i].frame_indices for i in range(6)] == first
    assert all(ds[i].video == ("a" if i % 2 == 0 else "b") for i in range(6))
    ds.set_epoch(1)
    assert [ds[i].frame_indices for i in range(6)] != first
    ds.set_epoch(0)
    assert ds[3].frame_indices == first[3]  # any order, any worker: same clip
    for i in range(6):
        c = ds[i]
        assert _frame_ids(c) == list(c.frame_indices)


def test_short_videos_are_redrawn():
    videos = [FakeVideo("short", 5), FakeVideo("long", 20)]
    ds = ClipDataset(videos, CFFMSampler(), repeat=4)
    for i in range(len(ds)):
        assert ds[i].video == "long"
    from vidseg.errors import DataError

    with pytest.raises(DataError):
        ClipDataset([FakeVideo("short", 5)], CFFMSampler())[0]


def test_with_transform_and_collate():
    videos = [FakeVideo("a", 15, 60, 80)]
    ds = ClipDataset(videos, ConsecutiveSampler(3), cffm_train_transform(crop=32), repeat=2)
    batch = ClipBatch.collate([ds[0], ds[1]])
    assert batch.frames.shape == (2, 3, 3, 32, 32)
    assert batch.labels.shape == (2, 3, 32, 32) and batch.labels.dtype == torch.int64
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=ClipBatch.collate)
    assert next(iter(loader)).frames.shape == (2, 3, 3, 32, 32)


def test_unlabelled_videos_give_no_labels():
    ds = ClipDataset([FakeVideo("t", 4, labelled=False)], ConsecutiveSampler(2), train=False)
    assert ds[0].labels is None and ds[0].frames.shape == (2, 3, 24, 32)


def test_on_vspw_reader_records(tmp_path):
    vspw = pytest.importorskip("vidseg.data.vspw")
    from PIL import Image

    frames, masks = [], []
    for i in range(4):
        f = tmp_path / "origin" / f"{i + 1:08d}.jpg"
        m = tmp_path / "mask" / f"{i + 1:08d}.png"
        f.parent.mkdir(exist_ok=True)
        m.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((16, 20, 3), 50 * i, np.uint8)).save(f)
        Image.fromarray(np.full((16, 20), i, np.uint8), mode="L").save(m)  # raw 0 = others -> 255
        frames.append(f)
        masks.append(m)
    video = vspw.VSPWVideo("v", tuple(frames), tuple(masks))
    ds = ClipDataset([video], ConsecutiveSampler(4), train=False)
    clip = ds[0]
    assert clip.labels[:, 0, 0].tolist() == [255, 0, 1, 2]
    assert clip.frames.shape == (4, 3, 16, 20)
