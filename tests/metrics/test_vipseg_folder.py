"""Folder scoring of VIPSeg submissions, the CLI, and bad-input errors."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from tests.metrics import brute_force_panoptic as bf

from vidseg.cli.main import main
from vidseg.errors import DataError
from vidseg.metrics.vipseg_eval import (
    VIPSegEvaluator,
    evaluate_vipseg_folder,
    write_rgb_id_png,
    write_vipseg_folders,
)
from vidseg.metrics.vpq import PanopticCategories

CATS_JSON = [{"id": 0, "name": "wall", "isthing": 0}, {"id": 1, "name": "person", "isthing": 1},
             {"id": 2, "name": "sky", "isthing": 0}, {"id": 3, "name": "car", "isthing": 1}]
CATS = PanopticCategories.from_json(CATS_JSON)


def _make(tmp_path, seed=0, n_videos=3, h=6, w=9):
    rng = np.random.default_rng(seed)
    gt_cat = {i: int(rng.integers(0, 4)) for i in range(1, 8)}
    gt_cat.update({70000: 0, 1 << 20: 2})  # ids needing G and B bytes
    pred_cat = {i + 100: c for i, c in gt_cat.items() if i < 8}
    pred_cat.update({200: 1, 201: 3, (1 << 23) + 5: 2})
    gt_ids, pred_ids = np.array(list(gt_cat)), np.array(list(pred_cat))
    gt, pred = {}, {}
    for v in range(n_videos):
        frames_gt, frames_pred = [], []
        for _ in range(int(rng.integers(1, 10))):
            g = rng.choice(np.append(gt_ids, 0), size=(h, w))
            p = np.where(g < 8, g + 100, (1 << 23) + 5)
            p[g == 0] = 0
            noise = rng.random((h, w)) < 0.2
            p[noise] = rng.choice(np.append(pred_ids, 0), size=int(noise.sum()))
            frames_gt.append(g)
            frames_pred.append(p)
        gt[f"vid{v}"], pred[f"vid{v}"] = frames_gt, frames_pred
    paths = write_vipseg_folders(tmp_path, gt, pred, gt_cat, pred_cat, CATS_JSON)
    return paths, gt, pred, gt_cat, pred_cat


def _args(paths):
    return dict(gt_json=paths["gt_json"], gt_dir=paths["gt_dir"], submit_dir=paths["submit_dir"])


def test_folder_equals_arrays_and_brute_force_for_any_workers(tmp_path):
    paths, gt, pred, gt_cat, pred_cat = _make(tmp_path)
    res1 = evaluate_vipseg_folder(**_args(paths), workers=1, progress=False)
    res2 = evaluate_vipseg_folder(**_args(paths), workers=2, progress=False)
    assert json.dumps(res1, default=str) == json.dumps(res2, default=str)
    gt_json = json.loads(paths["gt_json"].read_text())
    pred_json = json.loads(paths["submit_dir"].joinpath("pred.json").read_text())
    videos = []
    for gv, pv in zip(gt_json["annotations"], pred_json["annotations"], strict=True):
        vid = gv["video_id"]
        videos.append([(g, p, ga["segments_info"], pa["segments_info"]) for g, p, ga, pa in
                       zip(gt[vid], pred[vid], gv["annotations"], pv["annotations"], strict=True)])
    ev = VIPSegEvaluator(categories=CATS)
    for i, frames in enumerate(videos):
        ev.process_arrays(gt_json["videos"][i]["video_id"], *[[f[j] for f in frames] for j in range(4)])
    assert json.dumps(ev.evaluate()["VPQ"]) == json.dumps(res1["VPQ"])
    thing = {c["id"]: bool(c["isthing"]) for c in CATS_JSON}
    for k in (1, 2, 4, 6, 8):
        ref = bf.vpq_stats(videos, list(thing), k)
        assert _eq(res1["VPQ"][str(k)]["all"], bf.pq_average(ref, thing))
    ref = bf.stq(videos, 4, [1, 3])
    assert res1["STQ"] == pytest.approx(ref["STQ"], rel=1e-12)
    assert res1["AQ"] == pytest.approx(ref["AQ"], rel=1e-12)
    assert res1["SQ"] == pytest.approx(ref["IoU"], rel=1e-12)
    assert [r["video"] for r in res1["per_sequence"]] == ["vid0", "vid1", "vid2"]
    fin = res1["VPQ_final"]["all"]
    vals = [res1["VPQ"][str(k)]["all"] for k in (1, 2, 4, 6, 8)]
    assert _eq(fin, sum(vals) / 5)


def _eq(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_cli_writes_json_fractions(tmp_path, capsys):
    paths, *_ = _make(tmp_path, seed=1)
    out = tmp_path / "res.json"
    code = main(["eval", "vipseg", "--gt-json", str(paths["gt_json"]), "--gt-dir", str(paths["gt_dir"]),
                 "--pred", str(paths["submit_dir"]), "--k", "1,2", "--json", str(out), "--no-progress",
                 "--per-category"])
    assert code == 0
    text = capsys.readouterr().out
    assert "VPQ^1" in text and "VPQ_final" in text and "STQ" in text and "IDX" in text
    res = json.loads(out.read_text())
    assert set(res["VPQ"]) == {"1", "2"}
    assert set(res["VPQ_final"]) == {"all", "thing", "stuff"}
    for key in ("STQ", "AQ", "SQ"):
        assert 0.0 <= res[key] <= 1.0
    assert res["per_category"]["1"][0]["id"] == 0


def _run_cli(paths, *extra):
    return main(["eval", "vipseg", "--gt-json", str(paths["gt_json"]), "--gt-dir", str(paths["gt_dir"]),
                 "--pred", str(paths["submit_dir"]), "--no-progress", *extra])


def test_missing_prediction_frames_and_videos(tmp_path, capsys):
    paths, *_ = _make(tmp_path)
    (paths["submit_dir"] / "pan_pred" / "vid1" / "00000001.png").unlink()
    with pytest.raises(DataError, match=r"1 of \d+ prediction PNGs are missing \(first: pan_pred/vid1/00000001"):
        evaluate_vipseg_folder(**_args(paths), progress=False)
    assert _run_cli(paths) == 2
    assert "missing" in capsys.readouterr().err
    pj = paths["submit_dir"] / "pred.json"
    data = json.loads(pj.read_text())
    data["annotations"] = data["annotations"][:1]
    pj.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"2 of 3 GT videos have no prediction \(first: vid1, vid2\)"):
        evaluate_vipseg_folder(**_args(paths), progress=False)


def test_extra_predictions_warn_official_fail_strict(tmp_path):
    paths, *_ = _make(tmp_path)
    shutil.copytree(paths["submit_dir"] / "pan_pred" / "vid0", paths["submit_dir"] / "pan_pred" / "other")
    with pytest.warns(UserWarning, match="extra prediction"):
        evaluate_vipseg_folder(**_args(paths), progress=False)
    with pytest.raises(DataError, match="extra prediction"):
        evaluate_vipseg_folder(**_args(paths), protocol="strict", progress=False)


def _edit_pred_json(paths, fn):
    pj = paths["submit_dir"] / "pred.json"
    data = json.loads(pj.read_text())
    fn(data)
    pj.write_text(json.dumps(data))


def test_png_json_inconsistency_errors(tmp_path):
    paths, *_ = _make(tmp_path)
    segs = json.loads((paths["submit_dir"] / "pred.json").read_text())["annotations"][0]["annotations"][0]
    dropped = segs["segments_info"][0]["id"]
    _edit_pred_json(paths, lambda d: d["annotations"][0]["annotations"][0]["segments_info"].pop(0))
    with pytest.raises(DataError, match=rf"segment ids {dropped} are in the PNG but not in pred.json"):
        evaluate_vipseg_folder(**_args(paths), progress=False)
    _edit_pred_json(paths, lambda d: d["annotations"][0]["annotations"][0]["segments_info"].append(
        {"id": dropped, "category_id": 1}))
    _edit_pred_json(paths, lambda d: d["annotations"][0]["annotations"][0]["segments_info"].append(
        {"id": 4242, "category_id": 1}))
    with pytest.raises(DataError, match="segment ids 4242 are in pred.json but not in the PNG"):
        evaluate_vipseg_folder(**_args(paths), progress=False)
    _edit_pred_json(paths, lambda d: d["annotations"][0]["annotations"][0]["segments_info"].pop())
    _edit_pred_json(paths, lambda d: d["annotations"][0]["annotations"][0]["segments_info"][0].update(
        category_id=99))
    with pytest.raises(DataError, match="unknown category_id 99"):
        evaluate_vipseg_folder(**_args(paths), progress=False)


def test_frame_count_and_name_pairing(tmp_path):
    paths, *_ = _make(tmp_path)
    _edit_pred_json(paths, lambda d: d["annotations"][0]["annotations"].append(
        dict(d["annotations"][0]["annotations"][-1], file_name="99999999.png")))
    with pytest.raises(DataError, match=r"video vid0: \d+ predicted frames, \d+ in the GT"):
        evaluate_vipseg_folder(**_args(paths), progress=False)
    _edit_pred_json(paths, lambda d: d["annotations"][0]["annotations"].pop())
    _edit_pred_json(paths, lambda d: d["annotations"][0]["annotations"][0].update(file_name="x.png"))
    with pytest.warns(UserWarning, match="pairing by list order"):
        evaluate_vipseg_folder(**_args(paths), progress=False)
    with pytest.raises(DataError, match="do not pair with the GT by name"):
        evaluate_vipseg_folder(**_args(paths), protocol="strict", progress=False)


def test_size_mismatch_and_palette_png(tmp_path):
    paths, *_ = _make(tmp_path)
    target = paths["submit_dir"] / "pan_pred" / "vid0" / "00000001.png"
    ids = json.loads((paths["submit_dir"] / "pred.json").read_text())["annotations"][0]["annotations"][0]
    one = ids["segments_info"][0]["id"]
    write_rgb_id_png(target, np.full((3, 3), one))
    with pytest.raises(DataError, match="differs from the ground truth"):
        evaluate_vipseg_folder(**_args(paths), progress=False)
    from PIL import Image

    Image.fromarray(np.zeros((6, 9), np.uint8), mode="L").convert("P").save(target)
    with pytest.raises(DataError, match="palette"):
        evaluate_vipseg_folder(**_args(paths), progress=False)


def test_strict_checks_gt_areas_and_official_uses_json_areas(tmp_path):
    paths, gt, *_ = _make(tmp_path, n_videos=1)
    data = json.loads(paths["gt_json"].read_text())
    seg = data["annotations"][0]["annotations"][0]["segments_info"][0]
    seg["area"] += 7
    paths["gt_json"].write_text(json.dumps(data))
    with pytest.raises(DataError, match="JSON area"):
        evaluate_vipseg_folder(**_args(paths), protocol="strict", progress=False)
    res = evaluate_vipseg_folder(**_args(paths), progress=False)  # official: JSON area silently used
    assert not math.isnan(res["VPQ"]["1"]["all"])


def test_stq_crowd_quirk_official_vs_strict():
    # the first segment listed in the video's JSON gets instance 0; for a thing that means crowd (official)
    g = np.full((4, 4), 5)
    p = np.full((4, 4), 9)
    gs = [{"id": 5, "category_id": 1, "iscrowd": 0, "area": 16}]
    ps = [{"id": 9, "category_id": 1}]
    results = {}
    for protocol in ("official", "strict"):
        ev = VIPSegEvaluator(categories=CATS, ks=(1,), protocol=protocol)
        ev.process_arrays("v", [g, g], [p, p], [gs, gs], [ps, ps])
        results[protocol] = ev.evaluate()
    assert results["official"]["AQ"] == 0.0 and results["official"]["per_sequence"][0]["AQ"] == 0.0
    assert results["strict"]["AQ"] == pytest.approx(1.0)
    for r in results.values():
        assert r["SQ"] == pytest.approx(1.0)
        assert r["VPQ"]["1"]["all"] == pytest.approx(1.0)
