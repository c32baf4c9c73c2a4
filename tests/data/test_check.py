"""``check_path`` lists every problem of a dataset (one test per bad-input class, and all at once)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from _layouts import make_davis, make_vipseg_720, make_vipseg_raw, make_vspw, save_png, write_video

from vidseg.data.layout import INCOMPLETE_MARKER
from vidseg.data.tools.check import check_path


def _problems(path: Path) -> list[str]:
    return [str(p) for p in check_path(path).problems]


def _vspw(tmp_path: Path) -> tuple[Path, Path]:
    make_vspw(tmp_path, videos=2, frames=3, test_videos=0)
    return tmp_path, sorted((tmp_path / "data").iterdir())[0]


def test_clean_datasets_have_no_problems(tmp_path):
    make_vspw(tmp_path / "vspw")
    make_vipseg_raw(tmp_path / "raw")
    make_vipseg_720(tmp_path / "720")
    make_davis(tmp_path / "davis")
    for name, layout in [("vspw", "vspw"), ("raw", "vipseg-raw"), ("720", "vipseg-720p"), ("davis", "davis")]:
        report = check_path(tmp_path / name)
        assert report.layout == layout
        assert report.ok, report.problems
        assert report.files_checked > 0


def test_vspw_every_problem_listed(tmp_path):
    root, video = _vspw(tmp_path)
    (video / "mask" / "00000001.png").unlink()                                 # missing mask
    (video / "origin" / "00000002.jpg").write_bytes(b"")                       # zero-byte frame
    data = (video / "origin" / "00000003.jpg").read_bytes()
    (video / "origin" / "00000003.jpg").write_bytes(data[: len(data) // 2])    # truncated frame
    other = sorted((root / "data").iterdir())[1]
    save_png(other / "mask" / "00000001.png", np.zeros((24, 40, 3), np.uint8))  # RGB mask
    bad = np.full((24, 40), 7, np.uint8)
    bad[0, 0] = 180
    save_png(other / "mask" / "00000002.png", bad, mode="L")                  # out of range
    save_png(other / "mask" / "00000003.png", np.ones((20, 40), np.uint8), mode="L")  # size mismatch
    (root / "data" / "hollow" / "origin").mkdir(parents=True)                  # empty video folder
    (root / "val.txt").write_text("ghost_video\n")                             # split names missing video
    problems = _problems(root)
    expected = [
        r"00000001.jpg: missing mask",
        r"00000002.jpg: zero-byte image",
        r"00000003.jpg: unreadable or truncated",
        r"00000001.png: image mode is RGB, expected L",
        r"00000002.png: label values \[180\] outside",
        r"00000003.png: mask size 20x40 differs from frame",
        r"hollow/origin: empty video folder",
        r"val.txt: names video 'ghost_video'",
    ]
    import re

    for pattern in expected:
        assert sum(bool(re.search(pattern, p)) for p in problems) == 1, (pattern, problems)
    assert len(problems) == len(expected)


def test_vipseg_raw_problems(tmp_path):
    make_vipseg_raw(tmp_path, videos=1, frames=2, test_videos=0)
    mask = tmp_path / "panomasks" / "0_clip0" / "00000002.png"
    m = np.ones((24, 40), np.uint16)
    m[3, 3] = 13001
    save_png(mask, m)
    (tmp_path / "panomasks" / "0_clip0" / "00000001.png").unlink()
    problems = _problems(tmp_path)
    assert any("00000002.png: panomask values [13001] decode to categories outside" in p for p in problems)
    assert any("00000001.jpg: missing mask" in p for p in problems)
    assert len(problems) == 2


def test_vipseg_720_json_png_disagreements(tmp_path):
    data = make_vipseg_720(tmp_path, videos=2, frames=2)
    segs0 = data["annotations"][0]["annotations"][0]["segments_info"]
    dropped = segs0.pop()["id"]                                                 # PNG id absent from JSON
    data["annotations"][0]["annotations"][1]["segments_info"].append(
        {"id": 4242, "category_id": 60, "iscrowd": 0, "area": 3})              # JSON id absent from PNG
    data["annotations"][1]["annotations"][0]["segments_info"][0]["area"] += 5  # wrong area
    (tmp_path / "panoptic_gt_VIPSeg.json").write_text(json.dumps(data))
    problems = _problems(tmp_path)
    assert any(f"0_v720/00000001.png: segment ids [{dropped}] in the PNG are absent" in p for p in problems)
    assert any("0_v720/00000002.png: segment ids [4242] of panoptic_gt_VIPSeg.json are absent" in p
               for p in problems)
    assert any("1_v720/00000001.png: JSON area" in p for p in problems)
    split_json = [p for p in problems if "segments differ from panoptic_gt_VIPSeg.json" in p]  # split JSONs kept
    assert len(split_json) == 2 and len(problems) == 3 + 2                                   # the old segments


def test_davis_problems(tmp_path):
    make_davis(tmp_path, videos=2, frames=3)
    seq = tmp_path / "Annotations" / "480p" / "seq-a"
    save_png(seq / "00000.png", np.zeros((24, 40, 3), np.uint8))              # RGB where indexed expected
    from vidseg.categories import davis_palette

    m = np.zeros((24, 40), np.uint8)
    m[0, 0] = 9
    save_png(tmp_path / "Annotations" / "480p" / "seq-b" / "00002.png", m, mode="P", palette=davis_palette())
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("seq-b\nnope\n")
    problems = _problems(tmp_path)
    assert any("seq-a/00000.png: image mode is RGB, expected indexed" in p for p in problems)
    assert any("seq-b/00002.png: object ids [9] are absent from the first frame" in p for p in problems)
    assert any("2017/val.txt: names video 'nope'" in p for p in problems)
    assert len(problems) == 3


def test_video_and_frames_and_incomplete(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, frames=10)
    assert check_path(path).ok and check_path(path).files_checked == 10
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert not check_path(path).ok
    root, _ = _vspw(tmp_path / "conv")
    (root / INCOMPLETE_MARKER).write_text("")
    assert any("incomplete conversion" in p for p in _problems(root))
