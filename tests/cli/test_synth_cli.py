"""``vidseg synth`` end to end through the CLI entry point."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from vidseg.cli.main import main


def test_synth_writes_dataset_and_json(tmp_path, capsys):
    out = tmp_path / "davis"
    rc = main(["synth", "davis", "--out", str(out), "--videos", "2", "--frames", "3", "--size", "24x40",
               "--seed", "5", "--quiet", "--json", str(tmp_path / "s.json")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "wrote davis dataset" in text and "train" in text
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["splits"] == {"train": ["synth-0000"], "val": ["synth-0001"], "test": []}
    with Image.open(out / "Annotations" / "480p" / "synth-0000" / "00002.png") as img:
        assert img.mode == "P" and img.size == (40, 24)


def test_synth_class_options(tmp_path):
    out = tmp_path / "v"
    rc = main(["synth", "vspw", "--out", str(out), "--videos", "1", "--frames", "2", "--size", "24x40",
               "--stuff", "wall,floor", "--things", "", "--quiet"])
    assert rc == 0
    raw = np.asarray(Image.open(out / "data" / "1000_synth_0000" / "mask" / "00000002.png"))
    assert set(np.unique(raw).tolist()) <= {1, 14, 0, 255}  # wall = raw 1, floor = raw 14


def test_synth_errors_are_one_line(tmp_path, capsys):
    assert main(["synth", "vspw", "--out", str(tmp_path / "a"), "--size", "big", "--quiet"]) == 2
    assert main(["synth", "vspw", "--out", str(tmp_path / "b"), "--things", "persn", "--quiet"]) == 2
    assert main(["synth", "vspw", "--out", str(tmp_path / "c"), "--objects", "x", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("vidseg synth: error:") for line in err)
    assert "did you mean 'person'" in err[1]
    assert not any(tmp_path.iterdir())
