"""``vidseg convert`` command line: both conversions, the summary table, one-line errors."""

from __future__ import annotations

import json

import pytest
from _layouts import make_vipseg_raw, make_vspw

from vidseg.cli.main import main
from vidseg.data.vipseg import VIPSeg720Dataset
from vidseg.data.vspw import VSPWDataset


def test_convert_vspw_480p_cli(tmp_path, capsys):
    make_vspw(tmp_path / "src", videos=1, frames=2, test_videos=0)
    code = main(["convert", "vspw-480p", "--src", str(tmp_path / "src"), "--out", str(tmp_path / "out"),
                 "--height", "12", "--quiet"])
    assert code == 0
    assert "frames" in capsys.readouterr().out
    video = VSPWDataset(tmp_path / "out")[0]
    assert video.load_frame(0).shape == (12, 20, 3)


def test_convert_vipseg_720p_cli_seed(tmp_path, capsys):
    make_vipseg_raw(tmp_path / "raw", videos=2, frames=2, test_videos=1)
    for name, seed in (("a", "7"), ("b", "7")):
        assert main(["convert", "vipseg-720p", "--src", str(tmp_path / "raw"), "--out", str(tmp_path / name),
                     "--seed", seed, "--height", "24", "--quiet"]) == 0
    ja = json.loads((tmp_path / "a" / "panoptic_gt_VIPSeg.json").read_text())
    assert ja == json.loads((tmp_path / "b" / "panoptic_gt_VIPSeg.json").read_text())
    assert len(VIPSeg720Dataset(tmp_path / "a", split="train")) == 1


def test_convert_errors_are_one_line(tmp_path, capsys):
    assert main(["convert", "vipseg-720p", "--src", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "source dataset folder not found" in err[0]
    (tmp_path / "empty").mkdir()
    assert main(["convert", "vspw-480p", "--src", str(tmp_path / "empty"), "--out", str(tmp_path / "o2")]) == 2
    assert "missing data/ folder" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()  # nothing written for a bad source


def test_convert_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["convert", "vipseg-720p", "--help"])
    assert exc.value.code == 0
    assert "--seed" in capsys.readouterr().out
