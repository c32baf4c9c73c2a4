"""Clip-level inference of Clip-PanoFCN against brute-force formulations of the official rules."""

from __future__ import annotations

import itertools

import pytest
import torch

from vidseg.models.panoptic.inference import (
    ClipInferenceSettings,
    _Things,
    center_candidates,
    fuse_stuff_kernels,
    fuse_thing_kernels,
    merge_panoptic,
    process_instances,
    stuff_argmax,
    stuff_candidates,
)


def _settings(**kw) -> ClipInferenceSettings:
    return ClipInferenceSettings(thing_categories=(10, 11, 12), stuff_categories=(0, 1, 2), **kw)


def brute_centers(logits, kernels, pool, top, thres):
    """Per pixel: smoothed score, 3x3 local-maximum test, frame-wise global top-k, strict threshold."""
    prob = logits.sigmoid()
    t, c, h, w = prob.shape
    r = (pool - 1) // 2
    feats, classes, scores = [], [], []
    for f in range(t):
        cands = []
        smooth = torch.zeros(c, h, w, dtype=prob.dtype)
        for k, y, x in itertools.product(range(c), range(h), range(w)):
            window = prob[f, k, max(0, y - r): y + r + 1, max(0, x - r): x + r + 1]
            smooth[k, y, x] = (prob[f, k, y, x] + window.sum() / pool**2) / 2
        for k, y, x in itertools.product(range(c), range(h), range(w)):
            nb = smooth[k, max(0, y - 1): y + 2, max(0, x - 1): x + 2]
            s = float(smooth[k, y, x]) if smooth[k, y, x] >= nb.max() else 0.0
            cands.append((s, k, y * w + x))
        cands.sort(key=lambda e: -e[0])
        for s, k, pos in cands[: min(top, h * w)]:
            if s > thres:
                scores.append(s)
                classes.append(k)
                feats.append(kernels[f].reshape(kernels.shape[1], -1)[:, pos])
    return torch.stack(feats), torch.tensor(classes), torch.tensor(scores, dtype=logits.dtype)


@pytest.mark.parametrize("pool", [3, 5])
def test_center_candidates_match_brute_force(pool):
    gen = torch.Generator().manual_seed(pool)
    logits = torch.randn(2, 3, 5, 6, generator=gen, dtype=torch.float64) * 2
    kernels = torch.randn(2, 4, 5, 6, generator=gen, dtype=torch.float64)
    feats, classes, scores = center_candidates(logits, kernels, pool, top_num=7, thres=0.6)
    ref = brute_centers(logits, kernels, pool, 7, 0.6)
    assert classes.tolist() == ref[1].tolist()
    torch.testing.assert_close(scores, ref[2])
    torch.testing.assert_close(feats, ref[0])
    assert 0 < len(scores) < 14  # the threshold and the top-k both act


def test_stuff_candidates_match_brute_force():
    gen = torch.Generator().manual_seed(3)
    t, s1, h, w, d = 3, 4, 4, 5, 6
    logits = torch.randn(t, s1, h, w, generator=gen, dtype=torch.float64) * 3
    logits[:, 3] -= 8  # channel 3 never wins
    kernels = torch.randn(t, d, h, w, generator=gen, dtype=torch.float64)
    feats, classes, scores = stuff_candidates(logits, kernels, thres=0.05)
    prob = logits.sigmoid()
    winner = prob.argmax(dim=1)  # the clip-level argmax is per pixel over channels
    exp_classes, exp_scores, exp_feats = [], [], []
    for ch in range(s1):
        where = winner == ch
        if not where.any():
            continue
        score = prob[:, ch][where].mean()
        if score > 0.05:
            exp_classes.append(ch)
            exp_scores.append(score)
            exp_feats.append((kernels * where.unsqueeze(1)).sum((0, 2, 3)) / (t * h * w))
    assert classes.tolist() == exp_classes and 3 not in exp_classes
    torch.testing.assert_close(scores, torch.stack(exp_scores))
    torch.testing.assert_close(feats, torch.stack(exp_feats))


def brute_fusion(weights, classes, thres):
    """Rule of spec §4.5: candidate k belongs to its first claimer i <= k (similar and same class)."""
    unit = weights / weights.norm(dim=1, keepdim=True)
    m = len(weights)

    def claims(i, k):
        return i <= k and float(unit[i] @ unit[k]) >= thres and int(classes[i]) == int(classes[k])

    first = [next((i for i in range(k + 1) if claims(i, k)), None) for k in range(m)]
    kept = [j for j in range(m) if first[j] == j]
    fused = [weights[[k for k in range(m) if first[k] == j]].mean(0) for j in kept]
    return kept, torch.stack(fused)


def test_thing_fusion_cumsum_rule_including_chains():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(8, generator=gen, dtype=torch.float64)
    e1 = torch.zeros(8, dtype=torch.float64)
    e1[0] = 1
    b = a + 0.55 * a.norm() * e1 / (1 + 0.0)  # similar to a
    c = b + 0.55 * a.norm() * e1              # similar to b, less to a
    cos = lambda u, v: float(u @ v / u.norm() / v.norm())  # noqa: E731
    assert cos(a, b) >= 0.9 and cos(b, c) >= 0.9 and cos(a, c) < 0.9
    d = a + 0.01 * torch.randn(8, generator=gen, dtype=torch.float64)  # like a, other class
    f = torch.randn(8, generator=gen, dtype=torch.float64)
    weights = torch.stack([a, b, c, d, f, a * 1.1])
    classes = torch.tensor([1, 1, 1, 2, 1, 1])
    scores = torch.linspace(0.9, 0.4, 6, dtype=torch.float64)
    fused, fcls, fsc = fuse_thing_kernels(weights, classes, scores, 0.9)
    kept, ref = brute_fusion(weights, classes, 0.9)
    # a claims b and the copy of a; c's first claimer is the dropped b, so c vanishes entirely
    assert kept == [0, 3, 4]
    torch.testing.assert_close(fused, ref)
    torch.testing.assert_close(fused[0], (a + b + 1.1 * a) / 3)
    assert fcls.tolist() == [1, 2, 1] and fsc.tolist() == scores[[0, 3, 4]].tolist()
    # without class specificity d joins a's group
    fused_any, cls_any, _ = fuse_thing_kernels(weights, classes, scores, 0.9, class_specific=False)
    assert cls_any.tolist() == [1, 1]


def test_thing_fusion_random_against_brute_force():
    gen = torch.Generator().manual_seed(5)
    base = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    weights = base[torch.randint(0, 4, (25,), generator=gen)] + 0.25 * torch.randn(25, 6, generator=gen,
                                                                                  dtype=torch.float64)
    classes = torch.randint(0, 2, (25,), generator=gen)
    fused, _, _ = fuse_thing_kernels(weights, classes, torch.rand(25, dtype=torch.float64), 0.9)
    kept, ref = brute_fusion(weights, classes, 0.9)
    assert 4 <= len(kept) < 25
    torch.testing.assert_close(fused, ref)


def test_stuff_fusion_averages_per_class():
    w = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    fused, cls, sc = fuse_stuff_kernels(w, torch.tensor([4, 2, 4]), torch.tensor([0.2, 0.5, 0.4]))
    assert cls.tolist() == [2, 4]
    torch.testing.assert_close(fused, torch.tensor([[3.0, 2.0], [3.0, 2.5]]))
    torch.testing.assert_close(sc, torch.tensor([0.5, 0.3]))


def test_process_instances_rescoring_filter_and_order():
    h, w = 2, 3
    logits = torch.full((2, 3, h, w), -5.0)
    logits[:, 0] = 0.0     # p = 0.5 everywhere: kept, mean mask prob 0.5
    logits[0, 1, 0, 0] = 5.0  # one confident pixel
    logits[:, 2] = -0.3    # p = 0.43 > 0.4
    scores = torch.tensor([0.3, 0.2, 0.1])
    kernels = torch.eye(3)
    things = process_instances(logits, torch.tensor([0, 1, 2]), scores, kernels, _settings())
    p1 = torch.sigmoid(torch.tensor(5.0))
    expected = sorted([(0.3 * 0.5, 0), (0.2 * float(p1), 1), (0.1 * float(torch.sigmoid(torch.tensor(-0.3))), 2)],
                      reverse=True)
    expected = [e for e in expected if e[0] >= 0.05]
    assert things.classes.tolist() == [e[1] for e in expected]
    torch.testing.assert_close(things.scores, torch.tensor([e[0] for e in expected]))
    assert tuple(things.prob.shape) == (2, len(expected), h, w)
    torch.testing.assert_close(things.kernels, kernels[[e[1] for e in expected]])


def _rect(t, h, w, frames, y0, y1, x0, x1):
    m = torch.zeros(t, h, w)
    for f in frames:
        m[f, y0:y1, x0:x1] = 1.0
    return m


def _merge_case(merge):
    """Hand-made clip of 2 frames, 8x8, strides 1 (no upsampling), thresholds as official."""
    t, h, w = 2, 8, 8
    masks = [
        _rect(t, h, w, (0, 1), 0, 8, 0, 4),   # A class 0 left half
        _rect(t, h, w, (0, 1), 0, 8, 3, 6),   # B class 0, 1/3 over A
        _rect(t, h, w, (0, 1), 0, 4, 0, 2),   # C class 1 inside A in both frames -> skipped
        _rect(t, h, w, (0, 1), 0, 2, 0, 3),   # D class 1: inside A in both frames -> skipped
        _rect(t, h, w, (0,), 4, 6, 0, 3) + _rect(t, h, w, (1,), 5, 8, 6, 8),  # E class 2: covered f0, free f1
        _rect(t, h, w, (0, 1), 0, 8, 0, 8),   # F score 0.1 < 0.2: ignored
    ]
    prob = torch.stack(masks, dim=1)
    things = _Things(prob, torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.1]),
                     torch.randn(6, 4))
    stuff = torch.zeros(t, h, w, dtype=torch.long)
    stuff[:, :, 6:] = 1   # 16 px per frame outside the things' reach -> 32 px (some taken by E in frame 1)
    stuff[:, 7:, :] = 2   # bottom row
    return merge_panoptic(things, stuff, (h, w), _settings(common_stride=1, stuff_area_limit=20, merge=merge))


def test_merge_official_overwrites_and_deoverlap_does_not():
    off, fix = _merge_case("official"), _merge_case("deoverlap")
    ido, idf = off.official_ids(), fix.official_ids()
    # B overwrites A's column 3 in the official merge; the de-overlapped merge keeps it for A
    assert int(ido[0, 0, 3]) == 1001 and int(idf[0, 0, 3]) == 1000
    assert int(ido[0, 0, 0]) == 1000 and int(ido[0, 0, 5]) == 1001
    # C (inside A in every frame) and F (score 0.1) never appear; D too is fully covered in both frames
    for ids in (ido, idf):
        assert 1100 not in ids.unique().tolist() and 1101 not in ids.unique().tolist()
    # E: covered > 0.5 in frame 0 only, so it is kept; official paints it in frame 0 too, deoverlap only in frame 1
    assert int(ido[0, 4, 1]) == 1200 and int(idf[0, 4, 1]) == 1000
    assert int(ido[1, 6, 7]) == 1200 and int(idf[1, 6, 7]) == 1200
    # stuff channel 1 (category 0): 14 free px in frame 0 + 10 in frame 1 (E took 4) = 24 >= 20 -> kept, although
    # each frame alone is under the limit; channel 2 (category 1): the bottom row minus the things leaves
    # 2 px in frame 0 and none in frame 1 -> void; channel 0 ("thing") never becomes a segment
    assert int(idf[0, 0, 7]) == 0 and int(idf[1, 4, 7]) == 0 and int(idf[1, 5, 7]) == 1200
    assert int(idf[0, 7, 7]) == -1 and 1 not in idf.unique().tolist()
    assert int((idf == 0).sum()) == 24
    # embeddings: category 10 has A and B; category 12 has E
    assert sorted(fix.embeddings) == [10, 12] and len(fix.embeddings[10]) == 2
    for bank in fix.embeddings.values():
        for e in bank:
            assert abs(float(e.norm()) - 1.0) < 1e-6


def test_overwritten_thing_still_counts_in_the_instance_index():
    t, h, w = 1, 4, 4
    prob = torch.stack([_rect(t, h, w, (0,), 0, 2, 0, 2), _rect(t, h, w, (0,), 0, 4, 0, 4)], dim=1)
    # the second (lower score) covers the first: overlap 4/16 < 0.5, so it is painted over it
    things = _Things(prob, torch.tensor([0, 0]), torch.tensor([0.9, 0.8]), torch.randn(2, 3))
    res = merge_panoptic(things, torch.zeros(t, h, w, dtype=torch.long), (h, w),
                         _settings(common_stride=1, merge="official"))
    assert res.official_ids().unique().tolist() == [1001]  # index 1: the overwritten first one kept index 0
    assert len(res.embeddings[10]) == 2


def test_stuff_argmax_is_the_official_argmax_over_the_zero_filled_map():
    """Kept channels [3, 5]: ties go to the lower channel; where every kept probability underflows to 0 the
    official argmax over the 0-filled map picks channel 0 ("thing" -> void)."""
    logits = torch.tensor([[[[1.0, -200.0, 2.0]], [[1.0, -200.0, 3.0]]]])  # [T=1, U=2, h=1, w=3]
    out = stuff_argmax(logits, torch.tensor([3, 5]), (1, 3), stride=1)
    assert out.tolist() == [[[3, 0, 5]]]
    assert stuff_argmax(logits[:, :0], torch.tensor([], dtype=torch.long), (1, 3), stride=1).tolist() == [[[0, 0, 0]]]


@pytest.mark.parametrize("seed", range(6))
def test_thing_mask_window_equals_the_full_upsampled_mask(seed):
    from vidseg.models.panoptic.inference import _upsample, thing_mask_window

    gen = torch.Generator().manual_seed(seed)
    t, h, w = 2, 9, 13
    prob = torch.rand(t, h, w, generator=gen) * 0.39  # below the threshold ...
    y, x = int(torch.randint(0, h, (1,), generator=gen)), int(torch.randint(0, w, (1,), generator=gen))
    prob[seed % t, y: y + 1 + seed % 3, x: x + 2] = 0.35 + 0.3 * torch.rand(1, generator=gen)  # ... except a blob
    prob[0, 0, 0] = 0.4 if seed % 2 else prob[0, 0, 0]  # exactly at the threshold, at the corner
    image = (h * 4 - 3, w * 4 - 2)  # unpadded image smaller than the upsampled map
    full = _upsample(prob[:, None], 4, image)[:, 0] > 0.4
    window = thing_mask_window(prob, 4, image, 0.4)
    got = torch.zeros_like(full)
    if window is not None:
        mask, (rows, cols) = window
        got[:, rows, cols] = mask
        assert mask.numel() < full.numel()
    assert torch.equal(got, full)
