"""``vidseg synth`` output read back by the readers, checked clean, converted, and written back identically."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vidseg.data.davis import DAVISDataset, write_davis_mask
from vidseg.data.layout import detect_layout
from vidseg.data.synth import generate
from vidseg.data.tools.check import check_path
from vidseg.data.tools.convert import convert_vipseg_720p
from vidseg.data.vipseg import (
    VIPSeg720Dataset,
    VIPSegRawDataset,
    panoptic_to_vipseg_raw,
    write_raw_panomask,
)
from vidseg.data.vspw import VSPWDataset, vspw_label_to_raw, write_raw_mask

SIZE = (32, 48)


def _synth(tmp_path, kind, test_fraction=0.0):
    root = tmp_path / kind
    generate(kind, root, videos=3, frames=3, size=SIZE, seed=5, val_fraction=0.34, test_fraction=test_fraction,
             progress=False)
    return root


def test_synth_vspw_read_and_write_back(tmp_path):
    root = _synth(tmp_path, "vspw", test_fraction=0.34)
    assert detect_layout(root) == "vspw"
    assert check_path(root).ok
    ds = VSPWDataset(root, split="train")
    assert len(ds) >= 1 and not VSPWDataset(root, split="test")[0].has_labels
    for video in ds:
        for i in range(len(video)):
            frame, label = video.load_sample(i)
            assert frame.shape == SIZE + (3,) and label.dtype == np.uint8
            raw = video.load_raw_mask(i)
            out = tmp_path / "back" / video.name / f"{i}.png"
            write_raw_mask(out, raw)
            assert out.read_bytes() == video.masks[i].read_bytes()  # synth -> read -> write: identical file
            if not (raw == 0).any():  # "others" is not representable after the shift
                assert np.array_equal(vspw_label_to_raw(label), raw)


def test_synth_vipseg_raw_round_trip_and_720p(tmp_path):
    root = _synth(tmp_path, "vipseg")
    assert detect_layout(root) == "vipseg-raw"
    assert check_path(root).ok
    raw_ds = VIPSegRawDataset(root)
    for video in raw_ds:
        for i in range(len(video)):
            cat, inst = video.load_panoptic(i)
            assert np.array_equal(panoptic_to_vipseg_raw(cat, inst), video.load_raw_mask(i))
            out = tmp_path / "back" / video.name / f"{i}.png"
            write_raw_panomask(out, panoptic_to_vipseg_raw(cat, inst))
            assert np.array_equal(np.asarray(Image.open(out)), video.load_raw_mask(i))
            assert out.read_bytes() == video.masks[i].read_bytes()
    out = tmp_path / "720"
    convert_vipseg_720p(root, out, seed=1, height=SIZE[0], progress=False)
    assert detect_layout(out) == "vipseg-720p"
    assert check_path(out).ok
    ds720 = VIPSeg720Dataset(out)
    assert ds720.names == raw_ds.names
    for video in ds720:
        ref = raw_ds[video.name]
        for i in range(len(video)):
            cat, inst = video.load_panoptic(i)
            rcat, rinst = ref.load_panoptic(i)
            assert np.array_equal(cat, rcat)
            # same segmentation: (category, instance) pairs correspond one to one
            pairs = set(zip((cat.astype(np.int64) * 1000 + inst).ravel().tolist(),
                            (rcat.astype(np.int64) * 1000 + rinst).ravel().tolist(), strict=True))
            assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)


@pytest.mark.parametrize("year", [2017, 2016])
def test_synth_davis_read_and_write_back(tmp_path, year):
    root = _synth(tmp_path, "davis")
    assert detect_layout(root) == "davis"
    assert check_path(root).ok
    ds = DAVISDataset(root, year=year, split="val")
    video = ds[0]
    ids = video.object_ids()
    assert ids and (ids == [1] if year == 2016 else max(ids) == len(ids))
    if year == 2017:
        for i in range(len(video)):
            out = tmp_path / "back" / f"{i}.png"
            write_davis_mask(out, video.load_label(i))
            assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(video.masks[i])))
            assert out.read_bytes() == video.masks[i].read_bytes()
            assert Image.open(out).getpalette() == Image.open(video.masks[i]).getpalette()
