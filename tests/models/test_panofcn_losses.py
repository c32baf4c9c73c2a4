"""Clip-PanoFCN losses: official numbers on a deterministic case, direct formulas, normalisation, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from tests.models import panofcn_case as case

from vidseg.models.panoptic.losses import PanopticFCNLoss, dice_loss, sigmoid_focal_loss
from vidseg.models.panoptic.targets import TargetConfig

# The official VideoGenerateGT.generate + VideoPanopticFCN.losses (VIPSeg-Dataset/VIPSeg-Dataset, ClipPanoFCN,
# functions taken from the sources by AST, detectron2 structures replaced by stand-ins, CPU, torch 2.13) on
# panofcn_case (/work/official/check_panofcn_losses.py). Every target tensor was equal too (max |diff| 0).
OFFICIAL = {
    "loss_pos_th": 393.1099548339844,
    "loss_pos_st": 13.942072868347168,
    "loss_seg_th": 1.9886460304260254,
    "loss_seg_st": 1.4010047912597656,
}
MATCHED_SEG_TH = 2.4310269355773926  # ours with each (instance, frame) mask paired with its own weights


def _run(weight_order: str = "matched", cfg: TargetConfig = case.CFG, labels=None, outputs=None):
    labels = case.make_labels() if labels is None else labels
    outputs = outputs or case.make_outputs(cfg.num_thing, cfg.num_regions)
    thing, stuff = case.make_embeds()
    loss = PanopticFCNLoss(cfg, weight_order=weight_order)
    return loss(outputs, labels, thing_embed=thing, stuff_embed=stuff), outputs


@pytest.fixture(scope="module")
def official_run():
    return _run("official")


@pytest.fixture(scope="module")
def matched_run():
    return _run("matched")


def test_equals_official_numbers(official_run):
    terms, _ = official_run
    for k, v in OFFICIAL.items():
        assert terms[k].item() == pytest.approx(v, rel=2e-5), k


def test_matched_weight_order_differs_only_in_thing_dice(matched_run):
    terms, _ = matched_run
    for k in ("loss_pos_th", "loss_pos_st", "loss_seg_st"):
        assert terms[k].item() == pytest.approx(OFFICIAL[k], rel=2e-5)
    assert terms["loss_seg_th"].item() == pytest.approx(MATCHED_SEG_TH, rel=2e-5)


def test_weight_orders_agree_with_one_frame():
    labels = case.make_labels()[:1, :1]
    outs = case.make_outputs()
    one = {k: ([x[:1].detach().requires_grad_() for x in v] if isinstance(v, list) else v)
           for k, v in outs.items()}
    one["encode_feat"] = outs["encode_feat"][:1].detach()
    a, _ = _run("matched", labels=labels, outputs=one)
    b, _ = _run("official", labels=labels, outputs=one)
    assert a["loss_seg_th"].item() > 0
    assert a["loss_seg_th"].item() == pytest.approx(b["loss_seg_th"].item(), rel=1e-6)


def test_focal_direct_formula():
    x = torch.linspace(-4, 4, 9, dtype=torch.float64)
    t = torch.tensor([0, 1, 0.5, 0, 1, 0.7, 0, 1, 0], dtype=torch.float64)
    got = sigmoid_focal_loss(x, t, 0.25, 2.0)
    for xi, ti, gi in zip(x.tolist(), t.tolist(), got.tolist()):
        p = 1 / (1 + math.exp(-xi))
        ce = -(ti * math.log(p) + (1 - ti) * math.log(1 - p))
        pt = p * ti + (1 - p) * (1 - ti)
        at = 0.25 * ti + 0.75 * (1 - ti)
        assert gi == pytest.approx(at * ce * (1 - pt) ** 2, rel=1e-9)


def test_dice_direct_formula():
    p = torch.tensor([[0.2, 0.9, 0.5, 0.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 1.0, 0.25, 1.0]], dtype=torch.float64)
    num = 2 * (0.9 + 0.125)
    den = (0.04 + 0.81 + 0.25) + (1 + 0.0625 + 1)
    assert float(dice_loss(p, t)) == pytest.approx(1 - num / den, rel=1e-12)


def test_stuff_focal_normalised_by_frames(matched_run):
    """loss_pos_st = sum over levels, frames and channels of the per-map mean focal loss / (B*T)."""
    terms, outs = matched_run
    tg = PanopticFCNLoss(case.CFG).targets(outs, case.make_labels())
    total = 0.0
    for region, lt in zip(outs["regions"], tg):
        r = region.detach().double()
        y = lt.regions.double()
        p = torch.sigmoid(r)
        ce = -(y * torch.log(p) + (1 - y) * torch.log1p(-p))
        pt = p * y + (1 - p) * (1 - y)
        f = (0.25 * y + 0.75 * (1 - y)) * ce * (1 - pt) ** 2
        total += float(f.mean(dim=(2, 3)).sum())
    assert terms["loss_pos_st"].item() == pytest.approx(total / (case.B * case.T), rel=1e-5)


def test_no_things_gives_zero_thing_terms_and_grads_flow():
    labels = case.make_labels()[:1, :2].clone()
    labels[torch.isin(labels // case.DIV - 1, torch.tensor([1, 3, 5]))] = case.pid(0)
    outs = case.make_outputs()
    outs = {k: ([x[:2].detach().requires_grad_() for x in v] if isinstance(v, list) else v) for k, v in outs.items()}
    outs["encode_feat"] = outs["encode_feat"][:2].detach()
    terms, outs = _run(labels=labels, outputs=outs)
    assert terms["loss_seg_th"].item() == 0.0
    assert terms["loss_pos_st"].item() > 0 and terms["loss_seg_st"].item() > 0
    sum(terms.values()).backward()
    assert all(torch.isfinite(x.grad).all() for x in outs["kernels"] if x.grad is not None)
    assert outs["regions"][0].grad is not None and outs["regions"][0].grad.abs().sum() > 0


def test_thing_dice_weights_are_not_detached(matched_run):
    """As the official code: the dice weights are the predicted centre probabilities, with gradient."""
    terms, outs = matched_run
    (g,) = torch.autograd.grad(terms["loss_seg_th"], outs["centers"][0], retain_graph=True)
    assert g.abs().sum() > 0
