"""VSPW reader: layout scanning, label shift, round trips, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from _layouts import make_vspw, save_png
from PIL import Image

from vidseg.data.vspw import VSPWDataset, vspw_label_to_raw, vspw_raw_to_label, write_raw_mask
from vidseg.errors import DataError


def test_shift_matches_official_recipe():
    raw = np.array([[0, 1, 2, 124, 255]], np.uint8)
    # official: label[label==0]=255; label=label-1; label[label==254]=255
    ref = raw.astype(np.int32)
    ref[ref == 0] = 255
    ref = ref - 1
    ref[ref == 254] = 255
    assert vspw_raw_to_label(raw).tolist() == ref.tolist()
    assert vspw_raw_to_label(raw).dtype == np.uint8
    assert vspw_label_to_raw(vspw_raw_to_label(raw)).tolist() == [[255, 1, 2, 124, 255]]
    with pytest.raises(ValueError):
        vspw_label_to_raw(np.array([[124]], np.uint8))


def test_read_splits_and_labels(tmp_path):
    masks = make_vspw(tmp_path, videos=2, frames=3)
    ds = VSPWDataset(tmp_path)
    assert len(ds) == 3 and ds.num_frames == 9
    val = VSPWDataset(tmp_path, split="val")
    assert val.names == [list(masks)[-1]]
    test = VSPWDataset(tmp_path, split="test")
    assert not test[0].has_labels
    with pytest.raises(DataError, match="no ground-truth mask"):
        test[0].load_label(0)
    video = ds[list(masks)[0]]
    assert video.frame_ids == ("00000001", "00000002", "00000003")
    frame, label = video.load_sample(1)
    assert frame.dtype == np.uint8 and frame.shape == (24, 40, 3)
    raw = masks[video.name][1]
    assert np.array_equal(label, vspw_raw_to_label(raw))
    assert label[0, 0] == 255 and label[0, 1] == 255
    assert label.max(initial=0) <= 255 and set(np.unique(label)) <= set(range(124)) | {255}


def test_round_trip_identical_files(tmp_path):
    make_vspw(tmp_path / "a", videos=1, frames=2, test_videos=0)
    video = VSPWDataset(tmp_path / "a")[0]
    for i in range(len(video)):
        out = tmp_path / "b" / f"{i}.png"
        write_raw_mask(out, video.load_raw_mask(i))
        assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(video.masks[i])))
        again = tmp_path / "c" / f"{i}.png"  # our writer is deterministic: write -> read -> write is byte-exact
        write_raw_mask(again, np.asarray(Image.open(out)))
        assert again.read_bytes() == out.read_bytes()
        assert Image.open(out).mode == "L"
        # library labels written back give the original file where raw has no "others"
        raw = video.load_raw_mask(i)
        raw_no0 = np.where(raw == 0, 255, raw)
        assert np.array_equal(vspw_label_to_raw(vspw_raw_to_label(raw_no0)), raw_no0)


def test_missing_mask_for_frame(tmp_path):
    make_vspw(tmp_path, videos=1, frames=3, test_videos=0)
    victim = next((tmp_path / "data").iterdir()) / "mask" / "00000002.png"
    victim.unlink()
    with pytest.raises(DataError, match=r"00000002\.jpg: missing mask"):
        VSPWDataset(tmp_path)


def test_empty_video_folder(tmp_path):
    make_vspw(tmp_path, videos=1, frames=1, test_videos=0)
    (tmp_path / "data" / "empty_video" / "origin").mkdir(parents=True)
    with pytest.raises(DataError, match="empty_video/origin: empty video folder"):
        VSPWDataset(tmp_path)


def test_split_names_missing_video(tmp_path):
    make_vspw(tmp_path, videos=1, frames=1, test_videos=0)
    (tmp_path / "val.txt").write_text("does_not_exist\n")
    with pytest.raises(DataError, match=r"val\.txt: names video 'does_not_exist'"):
        VSPWDataset(tmp_path, split="val")


def test_zero_byte_and_truncated_frame(tmp_path):
    make_vspw(tmp_path, videos=1, frames=2, test_videos=0)
    video = VSPWDataset(tmp_path)[0]
    video.frames[0].write_bytes(b"")
    with pytest.raises(DataError, match="00000001.jpg: zero-byte"):
        video.load_frame(0)
    data = video.frames[1].read_bytes()
    video.frames[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="00000002.jpg: unreadable or truncated"):
        video.load_frame(1)


def test_wrong_mode_and_out_of_range_and_size(tmp_path):
    make_vspw(tmp_path, videos=1, frames=3, test_videos=0)
    video = VSPWDataset(tmp_path)[0]
    save_png(video.masks[0], np.zeros((24, 40, 3), np.uint8))  # RGB mask
    with pytest.raises(DataError, match="00000001.png: image mode is RGB, expected L"):
        video.load_label(0)
    bad = np.full((24, 40), 3, np.uint8)
    bad[5, 5] = 200
    save_png(video.masks[1], bad, mode="L")
    with pytest.raises(DataError, match=r"00000002.png: label values \[200\] outside"):
        video.load_label(1)
    save_png(video.masks[2], np.ones((20, 40), np.uint8), mode="L")
    with pytest.raises(DataError, match="00000003.png: mask size 20x40 differs from frame"):
        video.load_sample(2)


def test_not_a_root(tmp_path):
    with pytest.raises(DataError, match="missing data/"):
        VSPWDataset(tmp_path)
