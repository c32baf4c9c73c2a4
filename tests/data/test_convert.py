"""Converters: VSPW -> 480p and raw VIPSeg -> 720P COCO-style; ids, areas, determinism, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _layouts import make_vipseg_raw, make_vspw, save_png
from PIL import Image

import vidseg.data.tools.convert as conv
from vidseg.categories import vipseg_categories
from vidseg.data.layout import INCOMPLETE_MARKER
from vidseg.data.tools.convert import SegmentIdAssigner, convert_vipseg_720p, convert_vspw_480p
from vidseg.data.vipseg import VIPSeg720Dataset, VIPSegRawDataset
from vidseg.data.vspw import VSPWDataset
from vidseg.errors import DataError
from vidseg.structures import rgb2id


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_vspw_480p_sizes_and_resampling(tmp_path):
    make_vspw(tmp_path / "src", videos=1, frames=1, h=24, w=40, test_videos=1)
    counts = convert_vspw_480p(tmp_path / "src", tmp_path / "out", progress=False)
    assert counts == {"videos": 2, "frames": 2, "masks": 1}
    src, out = VSPWDataset(tmp_path / "src"), VSPWDataset(tmp_path / "out")
    assert out.names == src.names
    video, ref = out[0], src[0]
    assert Image.open(video.frames[0]).size == (int(480 * 40 / 24), 480)
    expected_mask = Image.open(ref.masks[0]).resize((800, 480), Image.NEAREST)
    assert np.array_equal(video.load_raw_mask(0), np.asarray(expected_mask))
    assert Image.open(video.masks[0]).mode == "L"
    expected = np.asarray(Image.open(ref.frames[0]).convert("RGB").resize((800, 480), Image.BILINEAR), np.float32)
    assert np.abs(video.load_frame(0).astype(np.float32) - expected).mean() < 3  # JPEG re-encoding only
    assert not out[1].has_labels  # test video: frames only
    assert (tmp_path / "out" / "val.txt").read_text() == (tmp_path / "src" / "val.txt").read_text()


def test_vspw_480p_interrupted_then_resumed(tmp_path, monkeypatch):
    make_vspw(tmp_path / "src", videos=2, frames=3, h=24, w=40, test_videos=0)
    convert_vspw_480p(tmp_path / "src", tmp_path / "clean", height=12, progress=False)
    calls = {"n": 0}
    real = conv._save_jpeg

    def flaky(path, rgb):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        real(path, rgb)

    monkeypatch.setattr(conv, "_save_jpeg", flaky)
    with pytest.raises(KeyboardInterrupt):
        convert_vspw_480p(tmp_path / "src", tmp_path / "out", height=12, progress=False)
    out = tmp_path / "out"
    assert (out / INCOMPLETE_MARKER).exists() and not (out / "train.txt").exists()
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    with pytest.raises(DataError, match="incomplete conversion"):
        VSPWDataset(out)
    monkeypatch.setattr(conv, "_save_jpeg", real)
    convert_vspw_480p(tmp_path / "src", out, height=12, progress=False)
    assert _tree(out) == _tree(tmp_path / "clean")
    with pytest.raises(DataError, match="already holds a complete conversion"):
        convert_vspw_480p(tmp_path / "src", out, height=12, progress=False)


def test_vspw_480p_bad_input_named(tmp_path):
    make_vspw(tmp_path / "src", videos=1, frames=2, test_videos=0)
    mask = next((tmp_path / "src" / "data").iterdir()) / "mask" / "00000002.png"
    bad = np.full((24, 40), 130, np.uint8)
    save_png(mask, bad, mode="L")
    with pytest.raises(DataError, match=r"00000002.png: label values \[130\] outside"):
        convert_vspw_480p(tmp_path / "src", tmp_path / "out", height=12, progress=False)
    mask.unlink()
    with pytest.raises(DataError, match="missing mask"):
        convert_vspw_480p(tmp_path / "src", tmp_path / "out2", height=12, progress=False)


def test_id_assigner_rule():
    cats = vipseg_categories()
    a = SegmentIdAssigner(np.random.default_rng(0))
    wall = a.color(0)
    assert wall == cats[0].color and a.color(0) == wall  # stuff: always its colour
    person = [a.color(60) for _ in range(5)]
    assert person[0] == cats[60].color  # first thing instance takes the free category colour
    assert len(set(person)) == 5
    assert all(max(abs(c - b) for c, b in zip(col, cats[60].color, strict=True)) <= 30 for col in person)
    car = a.color(48)  # car's colour belongs to the stuff Playground_slide: never reused
    assert car != cats[48].color and car != cats[6].color


def _convert(tmp_path: Path, name: str, seed: int = 0, height: int = 24) -> Path:
    out = tmp_path / name
    convert_vipseg_720p(tmp_path / "raw", out, seed=seed, height=height, progress=False)
    return out


def test_vipseg_720p_ids_areas_and_schema(tmp_path):
    make_vipseg_raw(tmp_path / "raw", videos=2, frames=3, h=24, w=40, test_videos=1)
    out = _convert(tmp_path, "out")
    data = json.loads((out / "panoptic_gt_VIPSeg.json").read_text())
    assert list(data) == ["videos", "annotations", "categories"]
    assert len(data["categories"]) == 124 and set(data["categories"][0]) == {"id", "name", "isthing", "color"}
    assert [v["video_id"] for v in data["videos"]] == ["0_clip0", "1_clip1"]  # test video skipped
    raw_ds = VIPSegRawDataset(tmp_path / "raw")
    cats = vipseg_categories()
    for vid, ann in zip(data["videos"], data["annotations"], strict=True):
        assert set(vid) == {"video_id", "images"} and set(vid["images"][0]) == {"id", "width", "height", "file_name"}
        raw_video = raw_ds[vid["video_id"]]
        value_to_id: dict[int, int] = {}
        for t, frame_ann in enumerate(ann["annotations"]):
            assert set(frame_ann) == {"image_id", "file_name", "segments_info"}
            png = out / "panomasksRGB" / vid["video_id"] / frame_ann["file_name"]
            ids = rgb2id(np.asarray(Image.open(png)))
            counts = dict(zip(*np.unique(ids, return_counts=True), strict=True))
            segs = {s["id"]: s for s in frame_ann["segments_info"]}
            assert set(segs) == set(counts) - {0}
            for s in frame_ann["segments_info"]:
                assert set(s) == {"id", "category_id", "iscrowd", "area"} and s["iscrowd"] == 0
                assert s["area"] == counts[s["id"]]
                if not cats[s["category_id"]].isthing:
                    assert s["id"] == rgb2id(np.array([[cats[s["category_id"]].color]], np.uint8))[0, 0]
            raw = raw_video.load_raw_mask(t)
            for value in np.unique(raw):
                if value == 0:
                    assert (ids[raw == 0] == 0).all()
                    continue
                sid = np.unique(ids[raw == value])
                assert len(sid) == 1
                # the same raw value keeps the same id across the frames of the video
                assert value_to_id.setdefault(int(value), int(sid[0])) == int(sid[0])
        assert len(set(value_to_id.values())) == len(value_to_id)  # distinct raw values, distinct ids
    # the 720P reader agrees with the raw reader on categories
    ds = VIPSeg720Dataset(out)
    for video in ds:
        for t in range(len(video)):
            assert np.array_equal(video.load_label(t), raw_ds[video.name].load_label(t))
    assert VIPSeg720Dataset(out, split="val").names == ["1_clip1"]
    assert [v["video_id"] for v in json.loads((out / "panoptic_gt_VIPSeg_train.json").read_text())["videos"]] == [
        "0_clip0"]
    assert Image.open(out / "panomasks" / "0_clip0" / "00000001.png").mode.startswith("I")


def test_vipseg_720p_resize_and_determinism(tmp_path):
    make_vipseg_raw(tmp_path / "raw", videos=1, frames=2, h=24, w=40, test_videos=0)
    a = _convert(tmp_path, "a", seed=3, height=36)
    b = _convert(tmp_path, "b", seed=3, height=36)
    c = _convert(tmp_path, "c", seed=4, height=36)
    assert _tree(a) == _tree(b)
    assert Image.open(a / "images" / "0_clip0" / "00000001.jpg").size == (60, 36)
    ids_a = {s["id"] for f in json.loads((a / "panoptic_gt_VIPSeg.json").read_text())["annotations"][0]["annotations"]
             for s in f["segments_info"]}
    ids_c = {s["id"] for f in json.loads((c / "panoptic_gt_VIPSeg.json").read_text())["annotations"][0]["annotations"]
             for s in f["segments_info"]}
    assert ids_a != ids_c  # random thing colours depend on the seed
    raw = np.asarray(Image.open(tmp_path / "raw" / "panomasks" / "0_clip0" / "00000001.png"))
    expect = np.asarray(Image.fromarray(raw).resize((60, 36), Image.NEAREST))
    assert np.array_equal(np.asarray(Image.open(a / "panomasks" / "0_clip0" / "00000001.png")), expect)


def test_vipseg_720p_interrupted_then_resumed(tmp_path, monkeypatch):
    make_vipseg_raw(tmp_path / "raw", videos=2, frames=2, h=24, w=40, test_videos=0)
    clean = _convert(tmp_path, "clean", seed=1)
    real = conv._save_rgb_png
    calls = {"n": 0}

    def flaky(path, rgb):
        calls["n"] += 1
        if calls["n"] == 3:  # in the second video
            raise KeyboardInterrupt
        real(path, rgb)

    monkeypatch.setattr(conv, "_save_rgb_png", flaky)
    with pytest.raises(KeyboardInterrupt):
        _convert(tmp_path, "out", seed=1)
    out = tmp_path / "out"
    assert (out / INCOMPLETE_MARKER).exists()
    assert not (out / "panoptic_gt_VIPSeg.json").exists()
    with pytest.raises(DataError, match="incomplete conversion"):
        VIPSeg720Dataset(out)
    monkeypatch.setattr(conv, "_save_rgb_png", real)
    _convert(tmp_path, "out", seed=1)
    assert _tree(out) == _tree(clean)


def test_vipseg_720p_bad_values_named(tmp_path):
    make_vipseg_raw(tmp_path / "raw", videos=1, frames=1, h=24, w=40, test_videos=0)
    path = tmp_path / "raw" / "panomasks" / "0_clip0" / "00000001.png"
    m = np.asarray(Image.open(path)).copy()
    m[0, 5] = 13000
    save_png(path, m.astype(np.uint16))
    with pytest.raises(DataError, match="00000001.png: panomask value 13000 decodes to category 130"):
        _convert(tmp_path, "out")
