"""``vidseg dream``: pairs, a contact sheet, the same bytes for the same seed, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vidseg.cli.main import main
from vidseg.data.davis import write_davis_mask


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    image = np.full((48, 64, 3), 90, np.uint8)
    image[10:30, 20:40] = (240, 30, 30)
    ids = np.zeros((48, 64), np.uint8)
    ids[10:30, 20:40] = 1
    Image.fromarray(image).save(tmp_path / "f.png")
    write_davis_mask(tmp_path / "m.png", ids)
    return tmp_path / "f.png", tmp_path / "m.png"


def test_dream_writes_pairs_and_sheet(tmp_path: Path) -> None:
    frame, mask = _inputs(tmp_path)
    assert main(["dream", str(frame), str(mask), "--out", str(tmp_path / "a"), "--pairs", "3"]) == 0
    assert main(["dream", str(frame), str(mask), "--out", str(tmp_path / "b"), "--pairs", "3"]) == 0
    for name in ("000.jpg", "001.png", "002.png", "sheet.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with Image.open(tmp_path / "a" / "001.png") as m:
        assert m.mode == "P" and set(np.unique(np.asarray(m)).tolist()) <= {0, 1}


def test_dream_bad_mask_is_one_line(tmp_path: Path, capsys) -> None:
    frame, _ = _inputs(tmp_path)
    empty = tmp_path / "empty.png"
    write_davis_mask(empty, np.zeros((48, 64), np.uint8))
    assert main(["dream", str(frame), str(empty), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no object" in err and len(err.splitlines()) == 1
