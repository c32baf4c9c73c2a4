"""``vidseg annotate associate``: per-frame instance numbers permuted between frames come out as consistent tracks;
the ``panofcn_r50`` baseline's IoU-association predictor; the panoptic overlay colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidseg.cli.main import main
from vidseg.data.vipseg import read_raw_panomask, write_raw_panomask
from vidseg.inference.panoptic_assoc import AssociatedFramePredictor, frame_instances
from vidseg.models import get_entry, load_model, make_predictor
from vidseg.viz.panoptic import overlay_panoptic, segment_color

CAR, PERSON, SKY = 65, 61, 1  # raw categories (1-based): car and person are things, sky is stuff in VIPSeg


def _box(raw: np.ndarray, y: int, x: int, value: int, size: int = 8) -> None:
    raw[y:y + size, x:x + size] = value


def _frames() -> list[np.ndarray]:
    """Three frames: two cars and a person moving right by 2 px per frame; the annotators' per-frame instance
    numbers are permuted between frames; a second person appears in frame 2."""
    out = []
    numbering = [(0, 1, 0), (1, 0, 3), (0, 1, 7)]  # (left car, right car, person) raw instance per frame
    for t, (a, b, p) in enumerate(numbering):
        raw = np.full((32, 48), SKY, np.uint16)
        _box(raw, 4, 2 + 2 * t, CAR * 100 + a)
        _box(raw, 4, 24 + 2 * t, CAR * 100 + b)
        _box(raw, 20, 10 + 2 * t, PERSON * 100 + p)
        if t == 2:
            _box(raw, 20, 36, PERSON * 100 + 2, size=6)
        out.append(raw)
    return out


def test_associate_cli_gives_consistent_track_numbers(tmp_path: Path, capsys) -> None:
    for t, raw in enumerate(_frames()):
        write_raw_panomask(tmp_path / "in" / "vid" / f"{t + 1:08d}.png", raw)
    assert main(["annotate", "associate", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    assert "vid" in capsys.readouterr().out
    got = [read_raw_panomask(tmp_path / "out" / "vid" / f"{t + 1:08d}.png") for t in range(3)]
    for t, raw in enumerate(got):
        assert raw[4 + 1, 2 + 2 * t + 1] == CAR * 100 + 0  # the left car keeps the first car number
        assert raw[4 + 1, 24 + 2 * t + 1] == CAR * 100 + 1
        assert raw[20 + 1, 10 + 2 * t + 1] == PERSON * 100 + 0
        assert raw[0, 0] == SKY  # stuff passes through
    assert got[2][21, 37] == PERSON * 100 + 1  # the new person starts a new track
    # the input's pixels keep their category everywhere (only instance numbers change)
    for raw_in, raw_out in zip(_frames(), got, strict=True):
        np.testing.assert_array_equal(np.where(raw_in < 125, raw_in, raw_in // 100),
                                      np.where(raw_out < 125, raw_out, raw_out // 100))


def test_associate_cli_bad_input(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["annotate", "associate", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err
    assert "empty" in err and len(err.strip().splitlines()) == 1


def test_frame_instances_keys_per_category() -> None:
    category = np.array([[3, 3, 5, -1], [3, 3, 5, 5]])
    instance = np.array([[0, 1, 0, -1], [0, 1, 0, -1]])  # (3,0), (3,1), (5,0); the last 5 is stuff-like (-1)
    ids, cats = frame_instances(category, instance)
    assert ids[0, 3] == 0 and ids[1, 3] == 0
    assert len({ids[0, 0], ids[0, 1], ids[0, 2]}) == 3
    assert cats == {int(ids[0, 0]): 3, int(ids[0, 1]): 3, int(ids[0, 2]): 5}


def test_panofcn_baseline_uses_iou_association(monkeypatch) -> None:
    """The baseline predictor links per-frame instances by IoU: clip_inference is replaced by hand-made frames
    whose instance indices swap between frames while the boxes move by 2 px; the output tracks must not swap."""
    import vidseg.inference.panoptic_assoc as assoc
    from vidseg.models.panoptic.inference import ClipPanoptic

    assert get_entry("panofcn_r50").predictor.endswith(":AssociatedFramePredictor")
    calls = []

    def fake_clip_inference(model, outputs, settings):
        t = len(calls)
        calls.append(t)
        category = torch.full((1, 32, 48), 3, dtype=torch.long)  # stuff everywhere
        instance = torch.full((1, 32, 48), -1, dtype=torch.long)
        for k, x in enumerate((2, 24)):
            category[0, 4:12, x + 2 * t:x + 2 * t + 8] = 60
            instance[0, 4:12, x + 2 * t:x + 2 * t + 8] = (k + t) % 2  # swapped every frame
        return ClipPanoptic(category, instance)

    monkeypatch.setattr(assoc, "clip_inference", fake_clip_inference)
    torch.manual_seed(0)
    predictor = make_predictor("panofcn_r50", load_model("clip_panofcn_tiny"))
    assert isinstance(predictor, AssociatedFramePredictor) and predictor.clip_length == 1
    frames = [np.zeros((32, 48, 3), np.uint8)] * 3
    preds = list(predictor.predict(frames))
    assert [p.index for p in preds] == [0, 1, 2]
    left = [int(p.ids[6, 2 + 2 * t + 1]) for t, p in enumerate(preds)]
    right = [int(p.ids[6, 24 + 2 * t + 1]) for t, p in enumerate(preds)]
    assert len(set(left)) == 1 and len(set(right)) == 1 and left[0] != right[0]
    assert left[0] // 1000 == 61 and left[0] % 1000 in (1, 2)  # library id of category 60, a track
    assert int(preds[0].ids[20, 40]) == 4000  # stuff: (3 + 1) * 1000


def test_overlay_panoptic_colours_per_track_and_legend() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    ids = np.zeros((40, 60), np.int64)
    ids[:20] = 2 * 1000  # stuff, category 1
    ids[25:35, 5:15] = 61 * 1000 + 1  # thing, category 60, track 0
    ids[25:35, 30:40] = 61 * 1000 + 2
    out = overlay_panoptic(image, ids, alpha=1.0, legend=True, legend_width=80)
    assert out.shape == (40, 140, 3)
    plain = overlay_panoptic(image, ids, alpha=1.0, legend=False)
    assert tuple(plain[30, 10]) == segment_color(61 * 1000 + 1) != segment_color(61 * 1000 + 2)
    assert tuple(plain[10, 30]) == segment_color(2 * 1000)
    moved = np.roll(ids, 3, axis=1)  # the same track id in another frame keeps its colour
    assert tuple(overlay_panoptic(image, moved, alpha=1.0, legend=False)[30, 14]) == segment_color(61 * 1000 + 1)
