"""DAVIS 2017 / 2016 readers."""

from __future__ import annotations

import numpy as np
import pytest
from _layouts import make_davis, make_davis2016, save_png
from PIL import Image

from vidseg.data.davis import DAVISDataset, write_davis_mask
from vidseg.errors import DataError


def test_davis2017_objects_and_void(tmp_path):
    masks = make_davis(tmp_path, videos=2, frames=3)
    assert DAVISDataset(tmp_path, split="train").names == ["seq-a"]
    ds = DAVISDataset(tmp_path, split="val")
    assert ds.names == ["seq-b"]
    video = ds[0]
    assert video.object_ids() == [1, 2, 3]
    frame, label = video.load_sample(2)
    assert frame.shape == (24, 40, 3)
    assert np.array_equal(label, masks["seq-b"][2])
    assert label[-1, -1] == 255


def test_davis2016_from_2017_merges_objects(tmp_path):
    masks = make_davis(tmp_path, videos=2, frames=2)
    video = DAVISDataset(tmp_path, year=2016, split="val")[0]
    label = video.load_label(0)
    m = masks["seq-b"][0]
    assert np.array_equal(label, np.where(m == 255, 255, (m != 0).astype(np.uint8)))
    assert video.object_ids() == [1]


def test_davis2016_package_binary_masks(tmp_path):
    masks = make_davis2016(tmp_path, videos=2, frames=2)
    ds = DAVISDataset(tmp_path, year=2016, split="val")
    assert ds.names == ["seq16-0", "seq16-1"]
    assert np.array_equal(ds[1].load_label(1), (masks["seq16-1"][1] > 0).astype(np.uint8))
    # a binary greyscale mask is the wrong mode for DAVIS 2017
    with pytest.raises(DataError, match="image mode is L, expected indexed"):
        DAVISDataset(tmp_path, year=2017, split=None)[0].load_label(0)


def test_round_trip_palette_png(tmp_path):
    make_davis(tmp_path / "a", videos=1, frames=2)
    video = DAVISDataset(tmp_path / "a", split=None)[0]
    for i in range(len(video)):
        out = tmp_path / "b" / f"{i}.png"
        write_davis_mask(out, video.load_label(i))
        assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(video.masks[i])))
        assert Image.open(out).getpalette()[:12] == Image.open(video.masks[i]).getpalette()[:12]
        again = tmp_path / "c" / f"{i}.png"  # our writer is deterministic: write -> read -> write is byte-exact
        write_davis_mask(again, np.asarray(Image.open(out)))
        assert again.read_bytes() == out.read_bytes()


def test_rgb_mask_rejected(tmp_path):
    make_davis(tmp_path, videos=1, frames=1)
    video = DAVISDataset(tmp_path, split=None)[0]
    save_png(video.masks[0], np.zeros((24, 40, 3), np.uint8))
    with pytest.raises(DataError, match="00000.png: image mode is RGB, expected indexed"):
        video.load_label(0)


def test_first_frame_only_annotations(tmp_path):
    make_davis(tmp_path, videos=1, frames=3)
    for p in sorted((tmp_path / "Annotations" / "480p" / "seq-a").iterdir())[1:]:
        p.unlink()
    video = DAVISDataset(tmp_path, split=None)[0]
    assert video.masks[0] is not None and video.masks[1:] == (None, None)


def test_missing_mask_and_split(tmp_path):
    make_davis(tmp_path, videos=2, frames=3)
    (tmp_path / "Annotations" / "480p" / "seq-b" / "00001.png").unlink()
    with pytest.raises(DataError, match="seq-b/00001.jpg: missing mask"):
        DAVISDataset(tmp_path, split="val")
    (tmp_path / "ImageSets" / "2017" / "train.txt").write_text("seq-a\nghost\n")
    with pytest.raises(DataError, match="train.txt: names video 'ghost'"):
        DAVISDataset(tmp_path, split="train")
