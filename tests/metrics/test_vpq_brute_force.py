"""Fast table-based VPQ^k / STQ versus the plain brute-force references on hypothesis-generated videos."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.metrics import brute_force_panoptic as bf

from vidseg.errors import DataError
from vidseg.metrics.vipseg_eval import VIPSegEvaluator
from vidseg.metrics.vpq import PanopticCategories

# 5 categories: 0, 2 stuff; 1, 3, 4 things
CATS = PanopticCategories(ids=(0, 1, 2, 3, 4), isthing=(False, True, False, True, True))
CAT_THING = dict(zip(CATS.ids, CATS.isthing, strict=True))
THINGS = [c for c, t in CAT_THING.items() if t]
KS = (1, 2, 3, 4, 6)


def _frame_json(id_map, id_cat, crowd=(), drop=()):
    ids, counts = np.unique(id_map, return_counts=True)
    return [{"id": int(i), "category_id": int(id_cat[int(i)]), "iscrowd": int(int(i) in crowd), "area": int(c)}
            for i, c in zip(ids, counts, strict=True) if i != 0 and int(i) not in drop]


def random_video(rng, n_frames, h, w, n_gt, n_pred, p_void, noise, crowd_prob=0.0, p_drop=0.0):
    """A random video: GT segments with fixed categories, a prediction correlated with the GT."""
    gt_ids = rng.choice(np.arange(1, 60), size=n_gt, replace=False)
    gt_cat = {int(i): int(rng.integers(0, 5)) for i in gt_ids}
    pred_ids = rng.choice(np.arange(100, 160), size=n_pred, replace=False)
    pred_cat = {int(i): int(rng.integers(0, 5)) for i in pred_ids}
    mapping = {int(g): int(rng.choice(pred_ids)) for g in gt_ids}
    for g in gt_ids:  # most predictions keep the GT category
        if rng.random() < 0.7:
            pred_cat[mapping[int(g)]] = gt_cat[int(g)]
    crowd = {int(g) for g in gt_ids if rng.random() < crowd_prob}
    frames = []
    for _ in range(n_frames):
        active = rng.choice(gt_ids, size=int(rng.integers(1, n_gt + 1)), replace=False)
        gt = rng.choice(active, size=(h, w)).astype(np.int64)
        gt[rng.random((h, w)) < p_void] = 0
        pred = np.vectorize(lambda v: mapping.get(int(v), 0), otypes=[np.int64])(gt) if gt.size else gt.copy()
        flip = rng.random((h, w)) < noise
        pred[flip] = rng.choice(np.append(pred_ids, 0), size=int(flip.sum()))
        drop = {int(g) for g in gt_ids if rng.random() < p_drop}  # GT PNG ids the JSON does not list
        frames.append((gt, pred, _frame_json(gt, gt_cat, crowd, drop), _frame_json(pred, pred_cat)))
    return frames


def fast_eval(videos, protocol="official", short_videos="skip", ks=KS):
    ev = VIPSegEvaluator(categories=CATS, ks=ks, protocol=protocol, short_videos=short_videos)
    for i, frames in enumerate(videos):
        ev.process_arrays(i, [f[0] for f in frames], [f[1] for f in frames], [f[2] for f in frames],
                          [f[3] for f in frames])
    return ev


def _same(a, b):
    return (math.isnan(a) and math.isnan(b)) or a == b


def check_against_brute_force(videos, short_videos="skip", protocol="official"):
    try:
        for k in KS:
            bf.vpq_stats(videos, CATS.ids, k, short_videos, gt_area_from_png=protocol == "strict")
    except AssertionError:  # the official script asserts IoU <= 1 (GT JSON areas smaller than the PNG)
        with pytest.raises(DataError, match="IoU > 1"):
            fast_eval(videos, protocol, short_videos)
        return None
    ev = fast_eval(videos, protocol, short_videos)
    res = ev.evaluate()
    for k in KS:
        ref = bf.vpq_stats(videos, CATS.ids, k, short_videos, gt_area_from_png=protocol == "strict")
        fast = ev._vpq[k]
        for c_idx, c in enumerate(CATS.ids):
            assert fast.tp[c_idx] == ref[c]["tp"] and fast.fp[c_idx] == ref[c]["fp"]
            assert fast.fn[c_idx] == ref[c]["fn"]
            assert fast.iou[c_idx] == ref[c]["iou"]  # same summation order -> identical floats
        for name, flag in (("all", None), ("thing", True), ("stuff", False)):
            assert _same(res["VPQ"][str(k)][name], bf.pq_average(ref, CAT_THING, flag))
    ref = bf.stq(videos, 5, THINGS, first_instance=0 if protocol == "official" else 1)
    for key in ("STQ", "AQ", "IoU"):
        assert res[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-12, nan_ok=True)
    assert len(res["per_sequence"]) == len(ref["per_seq"])
    for row, (s, a, i) in zip(res["per_sequence"], ref["per_seq"], strict=True):
        assert [row["STQ"], row["AQ"], row["IoU"]] == pytest.approx([s, a, i], rel=1e-12, abs=1e-12, nan_ok=True)
    return res


video_params = st.fixed_dictionaries({
    "seed": st.integers(0, 2**32 - 1),
    "n_videos": st.integers(1, 3),
    "n_frames": st.integers(1, 7),
    "h": st.integers(1, 6),
    "w": st.integers(1, 7),
    "n_gt": st.integers(1, 8),
    "n_pred": st.integers(1, 8),
    "p_void": st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    "noise": st.sampled_from([0.0, 0.1, 0.3, 0.8]),
    "crowd": st.sampled_from([0.0, 0.0, 0.3]),
    "drop": st.sampled_from([0.0, 0.0, 0.2]),
})


def _videos(p):
    rng = np.random.default_rng(p["seed"])
    return [random_video(rng, int(rng.integers(1, p["n_frames"] + 1)), p["h"], p["w"], p["n_gt"], p["n_pred"],
                         p["p_void"], p["noise"], p["crowd"], p["drop"]) for _ in range(p["n_videos"])]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(video_params)
def test_official_matches_brute_force(p):
    check_against_brute_force(_videos(p))


@pytest.mark.slow
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(video_params)
def test_official_matches_brute_force_many(p):
    check_against_brute_force(_videos(p))


@settings(max_examples=20, deadline=None)
@given(video_params, st.sampled_from(["official", "strict"]))
def test_short_videos_whole_and_strict_match_brute_force(p, protocol):
    p = dict(p, crowd=0.0, drop=0.0)
    check_against_brute_force(_videos(p), short_videos="whole", protocol=protocol)


@settings(max_examples=20, deadline=None)
@given(video_params)
def test_relabelling_ids_changes_nothing(p):
    p = dict(p, crowd=0.0, drop=0.0)
    videos = _videos(p)
    rng = np.random.default_rng(p["seed"] + 1)
    perm_gt = {i: int(v) for i, v in zip(range(1, 60), rng.permutation(np.arange(1000, 1059)), strict=True)}
    perm_pr = {i: int(v) for i, v in zip(range(100, 160), rng.permutation(np.arange(5000, 5060)), strict=True)}

    def relabel(m, perm):
        return np.vectorize(lambda v: perm.get(int(v), 0), otypes=[np.int64])(m) if m.size else m

    def relabel_json(segs, perm):
        return [dict(s, id=perm[s["id"]]) for s in segs]

    moved = [[(relabel(g, perm_gt), relabel(pr, perm_pr), relabel_json(gs, perm_gt), relabel_json(ps, perm_pr))
              for g, pr, gs, ps in frames] for frames in videos]
    # strict numbers STQ instances from 1, so no segment becomes "crowd" depending on the JSON order
    a, b = fast_eval(videos, "strict").evaluate(), fast_eval(moved, "strict").evaluate()
    for k in KS:
        for name in ("all", "thing", "stuff"):
            assert a["VPQ"][str(k)][name] == pytest.approx(b["VPQ"][str(k)][name], nan_ok=True)
    for key in ("STQ", "AQ", "IoU"):
        assert a[key] == pytest.approx(b[key], nan_ok=True)


@settings(max_examples=20, deadline=None)
@given(video_params)
def test_perfect_prediction_scores_one(p):
    videos = [[(g, g, gs, [dict(s) for s in gs]) for g, _, gs, _ in frames] for frames in _videos(dict(p, crowd=0.0, drop=0.0))]
    res = fast_eval(videos, "strict").evaluate()
    for k in KS:
        v = res["VPQ"][str(k)]["all"]
        assert math.isnan(v) or v == pytest.approx(1.0)
    if not math.isnan(res["IoU"]):
        assert res["IoU"] == pytest.approx(1.0)
    assert res["AQ"] == pytest.approx(1.0) or res["AQ"] == 0.0  # 0 when no thing tube exists


def test_edge_cases_void_everywhere_and_short_videos():
    rng = np.random.default_rng(0)
    void = [(np.zeros((3, 4), np.int64), np.zeros((3, 4), np.int64), [], []) for _ in range(3)]
    one_frame = random_video(rng, 1, 4, 5, 3, 3, 0.1, 0.2)
    check_against_brute_force([void])
    res = check_against_brute_force([void, one_frame])
    assert math.isnan(res["VPQ"]["2"]["all"])  # nothing scored for k >= 2: both videos are too short
    check_against_brute_force([void, one_frame], short_videos="whole")
