"""VSPW confusion matrix / mIoU / WIoU, the evaluator, folder scoring, the CLI and bad input."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from vidseg.cli.main import main
from vidseg.errors import DataError
from vidseg.metrics.confusion import confusion_matrix, mean_iou, pixel_accuracy, weighted_iou
from vidseg.metrics.vspw import VSPWEvaluator, evaluate_vspw_folder, shift_vspw_gt

from .brute_force_vspw_davis import (
    bf_confusion,
    bf_flowwarp,
    bf_miou_mmseg,
    bf_miou_official,
    bf_shift,
    bf_vc_windows,
    bf_wiou,
)


@st.composite
def raw_and_pred(draw):
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    raw = rng.choice(np.array([0, 1, 2, 3, 124, 255], np.uint8), size=(h, w))
    if draw(st.booleans()):
        raw[:] = 255  # void everywhere
    pred = rng.choice(np.array([0, 1, 2, 123], np.uint8), size=(h, w))
    return raw, pred


def test_shift_matches_readme_recipe():
    raw = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(shift_vspw_gt(raw), bf_shift(raw))


@settings(max_examples=80, deadline=None)
@given(st.lists(raw_and_pred(), min_size=1, max_size=4))
def test_dataset_level_metrics_match_brute_force(frames):
    ev = VSPWEvaluator(vc_lengths=())
    ref = np.zeros((124, 124))
    for raw, pred in frames:
        ev.process(raw, pred)
        ref += bf_confusion(bf_shift(raw), pred.astype(np.int64), 124)
    np.testing.assert_array_equal(ev.cm, ref)
    res = ev.evaluate()
    np.testing.assert_equal(res["mIoU"], bf_miou_official(ref))
    np.testing.assert_equal(mean_iou(ev.cm, "mmseg"), bf_miou_mmseg(ref))
    if ref.sum():
        np.testing.assert_allclose(res["WIoU"], bf_wiou(ref), rtol=1e-14)
        assert res["pixel_acc"] == np.trace(ref) / ref.sum()


def test_official_vs_mmseg_rule():
    """A class only predicted is excluded officially but scores 0 in mmseg."""
    gt = np.array([[1, 1, 2, 2]], np.uint8)  # shifted classes 0 and 1
    pred = np.array([[0, 0, 1, 5]], np.uint8)  # class 5 never in GT
    cm = confusion_matrix(shift_vspw_gt(gt), pred, 124)
    assert mean_iou(cm) == pytest.approx((1 + 0.5) / 2)
    assert mean_iou(cm, "mmseg") == pytest.approx((1 + 0.5 + 0) / 3)
    assert weighted_iou(cm) == pytest.approx(0.5 * 1 + 0.5 * 0.5)
    assert pixel_accuracy(cm) == 0.75


def test_pitfall_pred_255_raises():
    """Spec §1.1: gt=5 with pred=255 is a TP of class 7 in the official code; we raise."""
    ev = VSPWEvaluator()
    with pytest.raises(DataError, match="255 outside the class range 0..123"):
        ev.process(np.array([[6]], np.uint8), np.array([[255]], np.uint8), where="x.png")
    with pytest.raises(DataError, match="124"):
        confusion_matrix(np.zeros((2, 2), np.uint8), np.full((2, 2), 124, np.uint8), 124)


def test_size_and_channel_checks():
    ev = VSPWEvaluator()
    with pytest.raises(DataError, match="differs"):
        ev.process(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(DataError, match="single-channel"):
        ev.process(np.zeros((2, 3), np.uint8), np.zeros((2, 3, 3), np.uint8))


def test_strict_rejects_bad_gt_values_official_ignores_them():
    gt = np.array([[200, 3]], np.uint8)
    pred = np.array([[1, 2]], np.uint8)
    VSPWEvaluator(protocol="official").process(gt, pred)
    with pytest.raises(DataError, match="ground truth value 200"):
        VSPWEvaluator(protocol="strict").process(gt, pred)


def test_evaluator_merge_equals_single_pass():
    rng = np.random.default_rng(0)
    videos = {f"v{i}": [(rng.integers(0, 4, (5, 6)).astype(np.uint8), rng.integers(0, 3, (5, 6)).astype(np.uint8))
                        for _ in range(int(rng.integers(3, 12)))] for i in range(4)}
    one = VSPWEvaluator(vc_lengths=(2, 4))
    parts = [VSPWEvaluator(vc_lengths=(2, 4)) for _ in range(2)]
    for i, (name, frames) in enumerate(videos.items()):
        for g, p in frames:
            one.process(g, p, video=name)
            parts[i // 2].process(g, p, video=name)
    merged = VSPWEvaluator(vc_lengths=(2, 4))
    for p in parts:
        merged.merge(p.state_dict())
    a, b = one.evaluate(), merged.evaluate()
    assert json.dumps(a) == json.dumps(b)
    pooled = sum((bf_vc_windows([g for g, _ in f], [p for _, p in f], 4, "official") for f in videos.values()), [])
    np.testing.assert_equal(a["mVC4"], np.nanmean(pooled))


# ------------------------------------------------------------------ folders


def _write(path, arr, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path) if mode != "RGB" else Image.fromarray(arr).save(path)


def make_vspw(tmp_path, n_videos=3, seed=0, size=(6, 8)):
    """A tiny VSPW root + predictions; returns (root, pred, {video: [(raw, pred, frame)]})."""
    rng = np.random.default_rng(seed)
    root, pred = tmp_path / "VSPW", tmp_path / "pred"
    names = [f"vid{i}" for i in range(n_videos)]
    root.mkdir(parents=True)
    (root / "val.txt").write_text("\n".join(names) + "\n")
    data = {}
    for i, v in enumerate(names):
        t = [1, 5, 10][i % 3]
        frames = []
        for k in range(t):
            raw = rng.choice(np.array([0, 1, 2, 255], np.uint8), size=size)
            p = rng.integers(0, 3, size).astype(np.uint8)
            img = rng.integers(0, 255, (*size, 3)).astype(np.uint8)
            stem = f"{k + 1:08d}"
            _write(root / "data" / v / "mask" / f"{stem}.png", raw)
            _write(root / "data" / v / "origin" / f"{stem}.jpg", img, "RGB")
            _write(pred / v / f"{stem}.png", p)
            frames.append((raw, p))
        data[v] = frames
    return root, pred, data


def _flows(tmp_path, data, seed=1):
    rng = np.random.default_rng(seed)
    flows = {}
    for v, frames in data.items():
        for k in range(len(frames) - 1):
            f = rng.normal(0, 1.5, (*frames[0][0].shape, 2)).astype(np.float32)
            (tmp_path / "flow" / v).mkdir(parents=True, exist_ok=True)
            np.save(tmp_path / "flow" / v / f"{k + 1:08d}.npy", f)
            flows[(v, k)] = f
    return flows


def test_folder_scoring_and_cli_match_brute_force(tmp_path):
    root, pred, data = make_vspw(tmp_path)
    flows = _flows(tmp_path, data)
    out = tmp_path / "res.json"
    code = main(["eval", "vspw", "--root", str(root), "--pred", str(pred), "--metrics", "miou,wiou,vc2,vc4,tc",
                 "--flow", str(tmp_path / "flow"), "--json", str(out), "--no-progress"])
    assert code == 0
    res = json.loads(out.read_text())
    cm = sum(bf_confusion(bf_shift(r), p.astype(np.int64), 124) for f in data.values() for r, p in f)
    assert res["mIoU"] == pytest.approx(bf_miou_official(cm), abs=1e-15)
    assert res["WIoU"] == pytest.approx(bf_wiou(cm), abs=1e-14)
    for n in (2, 4):
        pooled = sum((bf_vc_windows([r for r, _ in f], [p for _, p in f], n, "official") for f in data.values()), [])
        assert res[f"mVC{n}"] == pytest.approx(np.nanmean(pooled), abs=1e-15)
    tcm = np.zeros((124, 124))
    for (v, k), fl in flows.items():
        a, b = data[v][k][1], data[v][k + 1][1]
        tcm += bf_confusion(a.astype(np.int64), bf_flowwarp(b, fl).astype(np.int64), 124)
    assert res["TC"] == pytest.approx(bf_miou_official(tcm), abs=1e-15)
    assert set(res) >= {"mIoU", "WIoU", "pixel_acc", "mVC2", "mVC4", "TC", "per_class"}
    assert len(res["per_class"]) == 124 and "wall" in res["per_class"]
    # the official TC selection: only the first N videos
    r1 = evaluate_vspw_folder(root, pred, metrics="tc", flow=str(tmp_path / "flow"), tc_videos=1, progress=False)
    assert r1["tc_pairs"] == 0  # vid0 has one frame


@pytest.mark.slow
def test_workers_do_not_change_results(tmp_path):
    root, pred, _ = make_vspw(tmp_path, n_videos=4)
    a = evaluate_vspw_folder(root, pred, metrics="miou,wiou,vc2,vc4", workers=1, progress=False)
    b = evaluate_vspw_folder(root, pred, metrics="miou,wiou,vc2,vc4", workers=2, progress=False)
    assert json.dumps(a) == json.dumps(b)


def test_dis_flow_tc_runs(tmp_path):
    root, pred, _ = make_vspw(tmp_path, n_videos=3, size=(16, 20))
    res = evaluate_vspw_folder(root, pred, metrics="tc", progress=False)
    assert 0 <= res["TC"] <= 1 and res["tc_pairs"] == 4 + 9


def test_missing_extra_and_bad_predictions(tmp_path, capsys):
    root, pred, _ = make_vspw(tmp_path)
    (pred / "vid2" / "00000003.png").unlink()
    (pred / "vid2" / "00000007.png").unlink()
    with pytest.raises(DataError, match=r"2 prediction frames missing: vid2/00000003.png, vid2/00000007.png"):
        evaluate_vspw_folder(root, pred, progress=False)
    assert main(["eval", "vspw", "--root", str(root), "--pred", str(pred), "--no-progress"]) == 2
    assert "2 prediction frames missing" in capsys.readouterr().err

    root, pred, _ = make_vspw(tmp_path / "b")
    _write(pred / "other" / "00000001.png", np.zeros((6, 8), np.uint8))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        evaluate_vspw_folder(root, pred, progress=False)
    assert any("without ground truth" in str(x.message) for x in w)
    with pytest.raises(DataError, match="without ground truth"):
        evaluate_vspw_folder(root, pred, protocol="strict", progress=False)

    root, pred, _ = make_vspw(tmp_path / "c")
    _write(pred / "vid1" / "00000002.png", np.full((6, 8), 124, np.uint8))
    with pytest.raises(DataError, match=r"vid1/00000002.png: prediction value 124 outside"):
        evaluate_vspw_folder(root, pred, progress=False)
    _write(pred / "vid1" / "00000002.png", np.zeros((6, 8, 3), np.uint8), "RGB")
    with pytest.raises(DataError, match="mode is RGB"):
        evaluate_vspw_folder(root, pred, progress=False)
    _write(pred / "vid1" / "00000002.png", np.zeros((7, 8), np.uint8))
    with pytest.raises(DataError, match="differs from ground truth size"):
        evaluate_vspw_folder(root, pred, progress=False)
