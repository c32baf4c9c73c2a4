"""Issue 14: ``vidseg segment`` names outputs after the video id, never resumes another source, warns on random weights."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vidseg.errors import DataError
from vidseg.inference.segment import video_name
from vidseg.provenance import make_record, prepare_output_folder


def _frames(folder, seed, n=2, size=(32, 48)):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i:05d}.jpg")
    return folder


def test_video_name_is_the_video_id_of_dataset_layouts(tmp_path):
    vspw = _frames(tmp_path / "VSPW" / "data" / "127_-hIVCYO4C90" / "origin", 0, 1)
    davis = _frames(tmp_path / "DAVIS" / "JPEGImages" / "480p" / "bear", 0, 1)
    plain = _frames(tmp_path / "walk", 0, 1)
    nested = _frames(tmp_path / "clip7" / "frames", 0, 1)
    assert video_name(vspw) == "127_-hIVCYO4C90"
    assert video_name(davis) == "bear"
    assert video_name(plain) == "walk" and video_name(nested) == "clip7"
    assert video_name(tmp_path / "street.mp4") == "street"


def test_provenance_refuses_frames_of_another_source(tmp_path):
    a, b = _frames(tmp_path / "a" / "frames", 1), _frames(tmp_path / "b" / "frames", 2)
    out = tmp_path / "out" / "frames"
    prepare_output_folder(out, make_record("segment", "m", None, {}, source=a))
    (out / "00000.png").write_bytes(b"x")
    prepare_output_folder(out, make_record("segment", "m", None, {}, source=a))  # same source: resume
    with pytest.raises(DataError, match="source"):
        prepare_output_folder(out, make_record("segment", "m", None, {}, source=b))


@pytest.mark.parametrize("layout", ["vspw"])
def test_segment_vspw_layout_without_weights(tmp_path, layout):
    """Two VSPW videos into one OUT: two folders named by video id, a one-line random-weights warning."""
    root = tmp_path / "VSPW" / "data"
    out = tmp_path / "out"
    for seed, vid in enumerate(("v_one", "v_two")):
        _frames(root / vid / "origin", seed)
        cmd = [sys.executable, "-m", "vidseg.cli.main", "segment", str(root / vid / "origin"), "--model", "segformer_b0",
               "--out", str(out), "--quiet", "--img-scale", "none", "--size-divisor", "1"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        warn = [line for line in proc.stderr.splitlines() if "random weights" in line]
        assert len(warn) == 1 and warn[0].startswith("vidseg segment: warning:"), proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["v_one", "v_two"]
    assert len(list((out / "v_two").glob("*.png"))) == 2
