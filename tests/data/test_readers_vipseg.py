"""VIPSeg readers: raw 16-bit panomasks and the 720P COCO-style layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _layouts import make_vipseg_720, make_vipseg_raw, save_png
from PIL import Image

from vidseg.data.vipseg import (
    VIPSeg720Dataset,
    VIPSegRawDataset,
    panoptic_to_vipseg_raw,
    vipseg_raw_to_panoptic,
    write_raw_panomask,
)
from vidseg.errors import DataError
from vidseg.structures import decode_panoptic


def test_raw_decoding_rule():
    # stuff wall (raw 1), person (raw 61) instances 0 and 1, void, door stored without instance (raw 3)
    raw = np.array([[1, 6100, 6101, 0, 3, 124]], np.uint16)
    cat, inst = vipseg_raw_to_panoptic(raw)
    assert cat.tolist() == [[0, 60, 60, 255, 2, 123]]
    assert inst.tolist() == [[0, 1, 2, 0, 0, 0]]
    assert np.array_equal(panoptic_to_vipseg_raw(cat, inst), raw)
    with pytest.raises(DataError, match="outside 1..124"):
        vipseg_raw_to_panoptic(np.array([[12500]]), "m.png")


def test_raw_reader_and_round_trip(tmp_path):
    masks = make_vipseg_raw(tmp_path / "a", videos=2, frames=3)
    ds = VIPSegRawDataset(tmp_path / "a")
    assert len(ds) == 3
    assert VIPSegRawDataset(tmp_path / "a", split="val").names == [list(masks)[-1]]
    assert not VIPSegRawDataset(tmp_path / "a", split="test")[0].has_labels
    for name, raws in masks.items():
        video = ds[name]
        for i, raw in enumerate(raws):
            assert Image.open(video.masks[i]).mode.startswith("I")  # 16-bit PNG
            cat, inst = video.load_panoptic(i)
            ids = video.load_panoptic_ids(i)
            c2, i2 = decode_panoptic(ids)
            assert np.array_equal(c2, cat) and np.array_equal(i2, inst)
            # brute force reference of the official rule per pixel
            for r, c, k in zip(raw.ravel(), cat.ravel(), inst.ravel(), strict=True):
                if r == 0:
                    assert c == 255
                elif r < 125:
                    assert (c, k) == (r - 1, 0)
                else:
                    assert (c, k) == (r // 100 - 1, r % 100 + 1)
            out = tmp_path / "b" / f"{name}_{i}.png"
            write_raw_panomask(out, panoptic_to_vipseg_raw(cat, inst))
            assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(video.masks[i])))
            again = tmp_path / "c" / f"{name}_{i}.png"  # our writer is deterministic: byte-exact re-write
            write_raw_panomask(again, np.asarray(Image.open(out)))
            assert again.read_bytes() == out.read_bytes()


def test_raw_wrong_mode(tmp_path):
    make_vipseg_raw(tmp_path, videos=1, frames=1, test_videos=0)
    video = VIPSegRawDataset(tmp_path)[0]
    save_png(video.masks[0], np.zeros((24, 40, 3), np.uint8))
    with pytest.raises(DataError, match="single-channel 16-bit"):
        video.load_panoptic(0)


def test_720_reader_ids_and_instances(tmp_path):
    data = make_vipseg_720(tmp_path, videos=2, frames=3)
    ds = VIPSeg720Dataset(tmp_path)
    assert ds.names == ["0_v720", "1_v720"]
    assert VIPSeg720Dataset(tmp_path, split="val").names == ["1_v720"]
    for vid_ann, video in zip(data["annotations"], ds, strict=True):
        persons = [s["id"] for s in vid_ann["annotations"][0]["segments_info"] if s["category_id"] == 60]
        for i in range(len(video)):
            ids = video.load_rgb_ids(i)
            cat, inst = video.load_panoptic(i)
            segs = vid_ann["annotations"][i]["segments_info"]
            for s in segs:
                m = ids == s["id"]
                assert m.sum() == s["area"]
                assert (cat[m] == s["category_id"]).all()
                expect = persons.index(s["id"]) + 1 if s["category_id"] == 60 else 0
                assert (inst[m] == expect).all()
            assert (cat[ids == 0] == 255).all()


def test_720_round_trip_rgb_ids(tmp_path):
    make_vipseg_720(tmp_path / "a", videos=1, frames=2)
    video = VIPSeg720Dataset(tmp_path / "a")[0]
    from vidseg.structures import id2rgb

    for i in range(len(video)):
        out = tmp_path / "b" / f"{i}.png"
        out.parent.mkdir(exist_ok=True)
        Image.fromarray(id2rgb(video.load_rgb_ids(i))).save(out)
        assert out.read_bytes() == video.masks[i].read_bytes()


def test_720_json_png_disagreement(tmp_path):
    data = make_vipseg_720(tmp_path, videos=1, frames=2)
    segs = data["annotations"][0]["annotations"][0]["segments_info"]
    removed = segs.pop()  # a PNG segment absent from the JSON
    data["annotations"][0]["annotations"][1]["segments_info"].append(
        {"id": 77, "category_id": 60, "iscrowd": 0, "area": 5})  # a JSON segment absent from the PNG
    (tmp_path / "panoptic_gt_VIPSeg.json").write_text(json.dumps(data))
    video = VIPSeg720Dataset(tmp_path)[0]
    with pytest.raises(DataError, match=rf"00000001.png: segment ids \[{removed['id']}\] in the PNG are absent"):
        video.load_panoptic(0)
    with pytest.raises(DataError, match=r"00000002.png: segment ids \[77\] of panoptic_gt_VIPSeg.json are absent"):
        video.load_panoptic(1)


def test_720_category_out_of_range(tmp_path):
    data = make_vipseg_720(tmp_path, videos=1, frames=1)
    data["annotations"][0]["annotations"][0]["segments_info"][0]["category_id"] = 124
    (tmp_path / "panoptic_gt_VIPSeg.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="category 124 outside 0..123"):
        VIPSeg720Dataset(tmp_path)


def test_raw_encoding_round_trip_random():
    from vidseg.categories import vipseg_categories

    is_thing = np.array([c.isthing for c in vipseg_categories()])
    rng = np.random.default_rng(0)
    for _ in range(20):
        cat = rng.integers(0, 124, size=(8, 9))
        inst = np.where(is_thing[cat], rng.integers(1, 101, size=cat.shape), 0)
        cat = np.where(rng.random(cat.shape) < 0.1, 255, cat)
        inst = np.where(cat == 255, 0, inst)
        raw = panoptic_to_vipseg_raw(cat, inst)
        c2, i2 = vipseg_raw_to_panoptic(raw)
        assert np.array_equal(c2, cat) and np.array_equal(i2, inst)
