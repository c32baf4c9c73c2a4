"""``vidseg info``: layout detection, statistics table / JSON, ``--check`` exit codes and listing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from _layouts import (  # noqa: E402
    make_davis,
    make_davis2016,
    make_vipseg_720,
    make_vipseg_raw,
    make_vspw,
    save_jpg,
    save_png,
    write_video,
)

from vidseg.cli.main import main  # noqa: E402
from vidseg.data.layout import detect_layout  # noqa: E402
from vidseg.data.tools.stats import dataset_stats  # noqa: E402
from vidseg.errors import DataError  # noqa: E402


def test_detect_every_layout(tmp_path):
    make_vspw(tmp_path / "vspw")
    make_vspw(tmp_path / "vspw480", videos=1, frames=1, h=480, w=64, test_videos=0)
    make_vipseg_raw(tmp_path / "raw")
    make_vipseg_720(tmp_path / "720")
    make_davis(tmp_path / "davis")
    make_davis2016(tmp_path / "davis16")
    write_video(tmp_path / "v.webm", frames=3)
    save_jpg(tmp_path / "frames" / "0001.jpg", np.zeros((8, 8, 3), np.uint8))
    expected = {"vspw": "vspw", "vspw480": "vspw-480p", "raw": "vipseg-raw", "720": "vipseg-720p",
                "davis": "davis", "davis16": "davis", "v.webm": "video", "frames": "frames"}
    for name, layout in expected.items():
        assert detect_layout(tmp_path / name) == layout, name
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="unrecognised layout"):
        detect_layout(tmp_path / "nothing")


def test_stats_match_brute_force(tmp_path):
    masks = make_vspw(tmp_path, videos=2, frames=3, test_videos=1)
    stats = dataset_stats(tmp_path)
    assert (stats["videos"], stats["frames"], stats["annotated_frames"]) == (3, 9, 6)
    assert stats["frames_per_video"] == {"min": 3, "mean": 3.0, "max": 3}
    assert stats["resolutions"] == {"24x40": 9}
    per_frame = [len(set(np.unique(m).tolist()) - {0, 255}) for ms in masks.values() for m in ms]
    per_video = [len(set(np.unique(np.stack(ms)).tolist()) - {0, 255}) for ms in masks.values()]
    every = set(np.unique(np.stack([m for ms in masks.values() for m in ms])).tolist()) - {0, 255}
    c = stats["categories"]
    assert c["per_frame_mean"] == pytest.approx(np.mean(per_frame))
    assert c["per_video_mean"] == pytest.approx(np.mean(per_video))
    assert c["total"] == len(every) == c["things"] + c["stuff"]


def test_panoptic_and_davis_stats(tmp_path):
    make_vipseg_720(tmp_path / "720", videos=2, frames=3)
    s = dataset_stats(tmp_path / "720")
    # per video: wall + ground stuff, two persons (one leaves in frame 1)
    assert s["categories"] == {"total": 3, "things": 1, "stuff": 2, "per_frame_mean": 3.0, "per_video_mean": 3.0}
    assert s["instances"]["total"] == 4 and s["instances"]["per_frame_mean"] == pytest.approx(10 / 6)
    make_davis(tmp_path / "davis", videos=2, frames=2)
    d = dataset_stats(tmp_path / "davis")
    assert "categories" not in d and d["instances"]["total"] == 2 + 3
    make_davis2016(tmp_path / "davis16", videos=2, frames=2)
    d16 = dataset_stats(tmp_path / "davis16")
    assert d16["instances"] == {"total": 2, "per_video_mean": 1.0, "per_frame_mean": 1.0}


def test_info_cli_table_and_json(tmp_path, capsys):
    make_vipseg_raw(tmp_path / "raw")
    out = tmp_path / "info.json"
    assert main(["info", str(tmp_path / "raw"), "--quiet", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "vipseg-raw" in text and "frames per video (min/mean/max)" in text and "thing instances" in text
    data = json.loads(out.read_text())
    assert data["layout"] == "vipseg-raw" and data["videos"] == 3 and data["frames"] == 9


def test_info_video_file(tmp_path, capsys):
    write_video(tmp_path / "clip.mp4", frames=5, h=32, w=48, fps=10)
    assert main(["info", str(tmp_path / "clip.mp4"), "--json", str(tmp_path / "i.json")]) == 0
    data = json.loads((tmp_path / "i.json").read_text())
    assert (data["frames"], data["fps"], data["resolutions"]) == (5, 10.0, {"32x48": 5})
    assert data["duration_s"] == pytest.approx(0.5)


def test_info_check_lists_all_and_exits_nonzero(tmp_path, capsys):
    make_vspw(tmp_path, videos=2, frames=2, test_videos=0)
    videos = sorted((tmp_path / "data").iterdir())
    (videos[0] / "origin" / "00000001.jpg").write_bytes(b"")
    save_png(videos[1] / "mask" / "00000002.png", np.zeros((24, 40, 3), np.uint8))
    assert main(["info", str(tmp_path), "--check", "--quiet", "--json", str(tmp_path / "c.json")]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[-1].endswith("2 problems")
    assert "zero-byte" in lines[0] and "image mode is RGB" in lines[1]
    assert len(json.loads((tmp_path / "c.json").read_text())["problems"]) == 2


def test_info_check_clean_exits_zero_and_bad_path_one_line(tmp_path, capsys):
    make_davis(tmp_path / "d", videos=1, frames=2)
    assert main(["info", str(tmp_path / "d"), "--check", "--quiet"]) == 0
    assert main(["info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file or folder" in err[0]
