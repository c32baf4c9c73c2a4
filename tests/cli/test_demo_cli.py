"""``vidseg demo`` (basic version): dataset, overlay video, ground-truth contact sheet."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vidseg.cli.main import main


def _check_outputs(out, frames, size):
    import av

    assert (out / "synthetic_vspw" / "train.txt").is_file()
    with av.open(str(out / "overlay.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == frames
    assert decoded[0].shape[1] >= 2 * size[1]  # frame | ground truth side by side
    sheet = np.asarray(Image.open(out / "ground_truth.png"))
    assert sheet.ndim == 3 and sheet.shape[1] > size[1]


def test_demo_small(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--basic", "--out", str(out), "--videos", "2", "--frames", "4", "--size", "32x48", "--quiet",
               "--json", str(tmp_path / "demo.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "overlay.mp4" in text and "ground_truth.png" in text
    report = json.loads((tmp_path / "demo.json").read_text())
    assert report["frames"] == 8 and report["outputs"]["overlay video (mp4)"] == str(out / "overlay.mp4")
    _check_outputs(out, 4, (32, 48))
    # running it again replaces the dataset instead of failing
    assert main(["demo", "--basic", "--out", str(out), "--videos", "1", "--frames", "2", "--size", "32x48", "--quiet"]) == 0
    _check_outputs(out, 2, (32, 48))


@pytest.mark.slow
def test_demo_basic_default_size(tmp_path):
    assert main(["demo", "--basic", "--out", str(tmp_path / "d"), "--size", "240x426", "--videos", "2",
                 "--quiet"]) == 0
    _check_outputs(tmp_path / "d", 24, (240, 426))


@pytest.mark.slow
def test_demo_full_tiny(tmp_path, capsys):
    out = tmp_path / "full"
    rc = main(["demo", "--out", str(out), "--videos", "3", "--frames", "18", "--size", "32x48", "--iters", "2",
               "--batch", "2", "--no-tcb", "--quiet", "--json", str(tmp_path / "s.json")])
    assert rc == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary == json.loads((out / "summary.json").read_text())
    assert "cffm_b0" in summary["models"] and (out / "report.html").is_file()
    assert "mVC8" in capsys.readouterr().out
