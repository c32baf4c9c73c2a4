"""``vidseg annotate propagate``: layout, beat over copying the nearest key frame, incremental re-runs counted by
recomputed frames and untouched files, resume after an interruption, bad input named in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vidseg.annotate.propagate_folder as pf
from vidseg.cli.main import main
from vidseg.data.synth import SyntheticVideo, vspw_raw_mask
from vidseg.errors import DataError
from vidseg.fileio import read_image, write_mask_png

SIZE, FRAMES = (64, 96), 13


def _video(tmp_path: Path, keys: list[int], seed: int = 1) -> tuple[Path, Path, list[np.ndarray]]:
    """Frames as PNGs (frame names like VSPW's), key frames = ground truth raw masks at ``keys``."""
    from PIL import Image

    frames, labels = tmp_path / "frames", tmp_path / "keys"
    frames.mkdir()
    labels.mkdir()
    gt = []
    for t, frame in enumerate(SyntheticVideo(SIZE, FRAMES, seed=seed)):
        Image.fromarray(frame.image).save(frames / f"{t:08d}.png")
        gt.append(vspw_raw_mask(frame))
    for k in keys:
        write_mask_png(labels / f"{k:08d}.png", gt[k])
    return frames, labels, gt


def _accuracy(pred: list[np.ndarray], gt: list[np.ndarray], frames: list[int]) -> float:
    valid = [gt[t] != 255 for t in frames]
    hits = sum(int(((pred[t] == gt[t]) & v).sum()) for t, v in zip(frames, valid))
    return hits / sum(int(v.sum()) for v in valid)


def _masks(out: Path) -> list[np.ndarray]:
    return [read_image(out / "mask" / f"{t:08d}.png") for t in range(FRAMES)]


def test_propagate_cli_layout_and_beats_copying(tmp_path: Path, capsys) -> None:
    frames, keys, gt = _video(tmp_path, [0, 6, 12])
    out = tmp_path / "out"
    assert main(["annotate", "propagate", str(frames), "--keyframes", str(keys), "--out", str(out), "--quiet"]) == 0
    assert "3 key frames" in capsys.readouterr().out
    pred = _masks(out)
    for k in (0, 6, 12):
        np.testing.assert_array_equal(pred[k], gt[k])
    others = [t for t in range(FRAMES) if t not in (0, 6, 12)]
    copy = [gt[min((0, 6, 12), key=lambda k: (abs(k - t), k))] for t in range(FRAMES)]
    assert _accuracy(pred, gt, others) > _accuracy(copy, gt, others)
    record = json.loads((out / "propagation.json").read_text())
    assert record["complete"] and len(record["frames"]) == FRAMES
    assert record["frames"]["00000003"]["source"]["keyframes"].keys() == {"00000000", "00000006"}
    spots = read_image(out / "spots" / "00000003.png")
    assert set(np.unique(spots)) <= {0, 255}
    assert record["frames"]["00000003"]["spot_share"] == pytest.approx((spots == 255).mean())
    assert (out / "review.html").is_file() and len(list((out / "review").iterdir())) == 3 * FRAMES


def _mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in (out / "mask").iterdir()}


def test_refined_key_frame_recomputes_only_its_interval(tmp_path: Path) -> None:
    frames, keys, gt = _video(tmp_path, [0, 12])
    out = tmp_path / "out"
    first = pf.propagate_folder(frames, keys, out)
    assert len(first.recomputed) == FRAMES - 2 and first.intervals_recomputed == 1
    assert pf.propagate_folder(frames, keys, out).recomputed == []  # nothing changed: nothing recomputed
    before = _mtimes(out)
    write_mask_png(keys / "00000008.png", gt[8])  # a key frame added inside the interval 0..12
    added = pf.propagate_folder(frames, keys, out)
    assert sorted(added.recomputed) == [f"{t:08d}" for t in range(1, 12) if t != 8]
    assert added.intervals_recomputed == 2 and added.intervals_kept == 0
    before = _mtimes(out)
    refined = gt[8].copy()
    refined[:8, :8] = 1  # the annotator refines key frame 8: only 0..8 and 8..12 depend on it
    write_mask_png(keys / "00000008.png", refined)
    write_mask_png(keys / "00000004.png", gt[4])  # and adds key frame 4: intervals 0..4, 4..8, 8..12
    again = pf.propagate_folder(frames, keys, out)
    assert sorted(again.recomputed) == [f"{t:08d}" for t in (1, 2, 3, 5, 6, 7, 9, 10, 11)]
    write_mask_png(keys / "00000004.png", refined)  # only key frame 4 changes: 0..4 and 4..8
    before = _mtimes(out)
    last = pf.propagate_folder(frames, keys, out)
    assert sorted(last.recomputed) == [f"{t:08d}" for t in (1, 2, 3, 5, 6, 7)] and last.intervals_kept == 1
    after = _mtimes(out)
    unchanged = {f"{t:08d}.png" for t in (0, 8, 9, 10, 11, 12)}
    assert all(after[n] == before[n] for n in unchanged)
    assert all(after[n] != before[n] for n in before if n not in unchanged)


def test_interrupted_run_resumes_and_is_not_marked_complete(tmp_path: Path, monkeypatch) -> None:
    frames, keys, _ = _video(tmp_path, [0, 4, 8, 12])
    out = tmp_path / "out"
    real = pf._propagate_interval
    calls = []

    def dying(run, a, b, inner, source):
        calls.append((a, b))
        if a is not None and a != b and a >= 4:
            raise KeyboardInterrupt
        real(run, a, b, inner, source)

    monkeypatch.setattr(pf, "_propagate_interval", dying)
    with pytest.raises(KeyboardInterrupt):
        pf.propagate_folder(frames, keys, out)
    assert not (out / "review.html").exists()
    assert not json.loads((out / "propagation.json").read_text())["complete"]
    monkeypatch.setattr(pf, "_propagate_interval", real)
    resumed = pf.propagate_folder(frames, keys, out)
    assert sorted(resumed.recomputed) == [f"{t:08d}" for t in (5, 6, 7, 9, 10, 11)]  # 1..3 were finished
    assert (out / "review.html").is_file()


def _one_line_error(argv: list[str], capsys, *words: str) -> None:
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err


def test_bad_input_one_line_naming_the_file(tmp_path: Path, capsys) -> None:
    frames, keys, gt = _video(tmp_path, [0, 12])
    out = tmp_path / "out"
    argv = ["annotate", "propagate", str(frames), "--keyframes", str(keys), "--out", str(out)]
    write_mask_png(keys / "00000005.png", np.zeros((32, 48), np.uint8))
    _one_line_error(argv, capsys, "00000005.png", "32x48", "64x96")
    bad = gt[5].copy()
    bad[0, 0] = 200
    write_mask_png(keys / "00000005.png", bad)
    _one_line_error(argv, capsys, "00000005.png", "200", "0..124")
    assert not out.exists()  # nothing written before every input was checked
    other = tmp_path / "other"
    other.mkdir()
    write_mask_png(other / "frame_a.png", gt[0])
    _one_line_error(["annotate", "propagate", str(frames), "--keyframes", str(other), "--out", str(out)], capsys,
                    str(other), "no key-frame file matches")
    write_mask_png(keys / "00000005.png", gt[5])
    write_mask_png(keys / "0000005.png", gt[5])  # a typo among good key frames
    _one_line_error(argv, capsys, "0000005.png", "matches no frame")
    assert not out.exists()


def test_foreign_output_folder_is_refused(tmp_path: Path) -> None:
    frames, keys, _ = _video(tmp_path, [0, 12])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        pf.propagate_folder(frames, keys, tmp_path / "out")


def test_flow_files_and_farneback_match_their_backends(tmp_path: Path) -> None:
    """Flow read from files (forward + backward/) gives what the same flow computed on the fly gives."""
    from vidseg.flow import DISFlow

    frames, keys, _ = _video(tmp_path, [0, 6])
    paths = pf.list_frames(frames)
    images = [read_image(p, "RGB") for p in paths]
    flows = tmp_path / "flows"
    (flows / "backward").mkdir(parents=True)
    dis = DISFlow()
    for t, p in enumerate(paths):
        if t + 1 < len(paths):
            np.save(flows / f"{p.stem}.npy", dis(images[t], images[t + 1]))
        if t > 0:
            np.save(flows / "backward" / f"{p.stem}.npy", dis(images[t], images[t - 1]))
    pf.propagate_folder(frames, keys, tmp_path / "a", flow="dis")
    pf.propagate_folder(frames, keys, tmp_path / "b", flow=str(flows))
    for t in range(FRAMES):
        name = f"{t:08d}.png"
        np.testing.assert_array_equal(read_image(tmp_path / "a" / "mask" / name), read_image(tmp_path / "b" / "mask" / name))
    far = pf.make_pair_flow("farneback", images)
    assert far(0, 1).shape == (*SIZE, 2) and np.isfinite(far(1, 0)).all()


@pytest.mark.parametrize(("flow", "words"), [(["--flow", "raft"], ["--flow-weights"]),
                                             (["--flow", "dis:slowest"], ["slowest"]),
                                             (["--flow", "no_such_flows"], ["no_such_flows", "not found"])])
def test_bad_flow_is_refused_before_anything_is_written(tmp_path: Path, capsys, flow, words) -> None:
    frames, keys, _ = _video(tmp_path, [0, 12])
    out = tmp_path / "out"
    _one_line_error(["annotate", "propagate", str(frames), "--keyframes", str(keys), "--out", str(out), *flow],
                    capsys, *words)
    assert not out.exists()
