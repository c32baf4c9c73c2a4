"""Losses: CE with ignore/upsampling, weighting, class-balanced sampling, STCL against a brute-force loop."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from vidseg.models.losses import balanced_sample, seg_cross_entropy, stcl_loss, weighted_terms


def test_ce_ignores_255_and_upsamples():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4, 6)
    labels = torch.randint(0, 5, (2, 8, 12))
    labels[0, :3] = 255
    up = F.interpolate(logits, size=(8, 12), mode="bilinear", align_corners=False)
    logp = torch.log_softmax(up, 1)
    keep = labels != 255
    manual = -(logp.gather(1, labels.clamp(max=4)[:, None])[:, 0][keep]).mean()
    assert torch.allclose(seg_cross_entropy(logits, labels), manual, atol=1e-6)


def test_ce_all_ignored_is_zero_with_gradient():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = seg_cross_entropy(logits, torch.full((1, 4, 4), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_weighted_terms():
    t = {"loss_seg": torch.tensor(2.0), "loss_aux": torch.tensor(3.0), "loss_x": torch.tensor(1.0)}
    out = weighted_terms(t, {"loss_aux": 0.4, "loss_x": 0})
    assert out.keys() == {"loss_seg", "loss_aux"}
    assert math.isclose(out["loss_aux"].item(), 1.2, rel_tol=1e-6)


def test_balanced_sample_bound_and_balance():
    labels = torch.cat([torch.zeros(1000), torch.ones(30), torch.full((10,), 2), torch.full((500,), 255)]).long()
    g = torch.Generator().manual_seed(0)
    idx = balanced_sample(labels, 90, g)
    assert len(idx) <= 90 and (labels[idx] != 255).all()
    counts = torch.bincount(labels[idx], minlength=3)
    assert counts.tolist() == [30, 30, 10]  # quota 30 per class, small classes kept whole
    assert len(torch.unique(idx)) == len(idx)
    # large budget: every labelled pixel
    assert len(balanced_sample(labels, 10_000, g)) == 1040
    # more classes than budget: still bounded
    many = torch.arange(50)
    assert len(balanced_sample(many, 20, g)) == 20
    assert len(balanced_sample(torch.full((5,), 255), 10, g)) == 0


def _brute_force_stcl(anchors, alab, contrast, clab, apos, tau):
    """Eq. (1)-(2) of paper 004, one pixel and one positive at a time."""
    total, count = 0.0, 0
    for i in range(len(anchors)):
        pos = [j for j in range(len(contrast)) if clab[j] == alab[i] and j != apos[i]]
        neg = [j for j in range(len(contrast)) if clab[j] != alab[i]]
        if not pos:
            continue
        neg_sum = sum(math.exp(float(anchors[i] @ contrast[n]) / tau) for n in neg)
        li = 0.0
        for p in pos:
            e = math.exp(float(anchors[i] @ contrast[p]) / tau)
            li += -math.log(e / (e + neg_sum))
        total += li / len(pos)
        count += 1
    return total / count


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stcl_matches_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    contrast = F.normalize(torch.randn(40, 8, generator=g), dim=1).double()
    clab = torch.randint(0, 4, (40,), generator=g)
    clab[7] = 9  # a class with a single pixel: that anchor has no positive
    apos = torch.arange(0, 20)  # the first 20 contrast items are the anchors (frame t)
    anchors, alab = contrast[:20], clab[:20]
    ours = stcl_loss(anchors, alab, contrast, clab, apos, temperature=0.07)
    ref = _brute_force_stcl(anchors, alab, contrast, clab, apos.tolist(), 0.07)
    assert math.isclose(ours.item(), ref, rel_tol=1e-9)


def test_stcl_prefers_consistent_embeddings():
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    good = F.normalize(torch.eye(2)[labels] + 0.01 * torch.randn(8, 2), dim=1)
    bad = F.normalize(torch.randn(8, 2), dim=1)
    pos = torch.arange(4)
    assert stcl_loss(good[:4], labels[:4], good, labels, pos) < stcl_loss(bad[:4], labels[:4], bad, labels, pos)


def test_stcl_without_positives_is_zero():
    x = torch.randn(3, 4, requires_grad=True)
    loss = stcl_loss(x, torch.arange(3), x, torch.arange(3), torch.arange(3))
    assert loss.item() == 0.0
    loss.backward()
