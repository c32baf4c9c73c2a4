"""Loss reductions (issue 16) against an independent float64 NumPy formula with hand-derived gradients.

``official`` + ``mmseg``: CE of bilinearly upsampled logits, sum over labelled pixels / ALL pixels.
``official`` + ``vspw``: log_softmax at low resolution, upsampled log-probabilities, NLL mean over the labelled
pixels of each group of clips, groups averaged. ``valid``: CE of upsampled logits / labelled pixels.
The reference builds the bilinear (align_corners=False) interpolation as explicit matrices and writes the
gradients in closed form, so it shares no code with torch's interpolate / cross_entropy / autograd.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidseg.config import load_config
from vidseg.engine.build import build_model
from vidseg.errors import ConfigError
from vidseg.models.baselines import ImageSegmenter, baseline_loss, build_baseline
from vidseg.models.losses import (
    PixelLoss,
    all_pixel_cross_entropy,
    seg_cross_entropy,
    upsampled_log_prob_nll,
)
from vidseg.models.segformer import build_segformer
from vidseg.models.video.cffm import build_cffm
from vidseg.models.video.stsc import build_stsc
from vidseg.models.video.tcb import build_tcb

IGNORE = 255


def bilinear_matrix(n_out: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] weights of 1-D bilinear resizing with align_corners=False (half-pixel centres)."""
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        frac = src - i0
        w[i, i0] += 1 - frac
        w[i, i1] += frac
    return w


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _up(z: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    return np.einsum("Hh,nkhw,Ww->nkHW", wy, z, wx)


def _down(g: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    return np.einsum("Hh,nkHW,Ww->nkhw", wy, g, wx)


def _onehot(labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    valid = labels != IGNORE
    oh = np.zeros((labels.shape[0], k, *labels.shape[1:]))
    n, h, w = np.nonzero(valid)
    oh[n, labels[valid], h, w] = 1.0
    return oh, valid


def reference_ce(z: np.ndarray, labels: np.ndarray, denominator: str) -> tuple[float, np.ndarray]:
    """CE of upsampled logits; denominator "all" (mmseg) or "valid". Returns (loss, dloss/dz)."""
    k, (hh, ww) = z.shape[1], labels.shape[1:]
    wy, wx = bilinear_matrix(hh, z.shape[2]), bilinear_matrix(ww, z.shape[3])
    p = _softmax(_up(z, wy, wx), 1)
    oh, valid = _onehot(labels, k)
    den = labels.size if denominator == "all" else max(valid.sum(), 1)
    p_label = np.where(valid, (p * oh).sum(1), 1.0)
    loss = -np.log(p_label).sum() / den
    grad_u = (p - oh) * valid[:, None] / den
    return loss, _down(grad_u, wy, wx)


def reference_vspw(z: np.ndarray, labels: np.ndarray, group_rows: int) -> tuple[float, np.ndarray]:
    """NLL of upsampled log_softmax, mean over labelled pixels per group of rows, groups averaged."""
    n, k, (hh, ww) = z.shape[0], z.shape[1], labels.shape[1:]
    wy, wx = bilinear_matrix(hh, z.shape[2]), bilinear_matrix(ww, z.shape[3])
    logp_low = np.log(_softmax(z, 1))
    u = _up(logp_low, wy, wx)
    oh, valid = _onehot(labels, k)
    starts = list(range(0, n, group_rows))
    loss, grad_u = 0.0, np.zeros_like(u)
    for s in starts:
        sl = slice(s, s + group_rows)
        count = valid[sl].sum()
        if count == 0:
            continue  # vidseg: an all-ignored group contributes 0
        loss += -(u[sl] * oh[sl]).sum() / count / len(starts)
        grad_u[sl] = -oh[sl] / count / len(starts)
    grad_l = _down(grad_u, wy, wx)
    grad_z = grad_l - _softmax(z, 1) * grad_l.sum(1, keepdims=True)
    return loss, grad_z


def hand_made_batch() -> tuple[np.ndarray, np.ndarray]:
    """4 rows, 3 classes, logits 3x4 -> labels 7x9; labelled fractions differ per row; row 3 all ignored."""
    rng = np.random.default_rng(16)
    z = rng.normal(size=(4, 3, 3, 4)) * 2.0
    labels = rng.integers(0, 3, size=(4, 7, 9))
    labels[0, :5] = IGNORE      # row 0: 5 of 7 lines ignored
    labels[1, :, 6:] = IGNORE   # row 1: a third ignored
    labels[2, 3, 4] = IGNORE    # row 2: one pixel ignored
    labels[3] = IGNORE          # row 3: nothing labelled
    return z, labels


def _torch_loss_and_grad(fn, z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    loss = fn(zt, torch.tensor(labels))
    loss.backward()
    return loss.item(), zt.grad.numpy()


@pytest.mark.parametrize("name", ["all", "valid"])
def test_ce_reductions_match_the_reference(name: str) -> None:
    z, labels = hand_made_batch()
    fn = all_pixel_cross_entropy if name == "all" else seg_cross_entropy
    loss, grad = _torch_loss_and_grad(fn, z, labels)
    ref_loss, ref_grad = reference_ce(z, labels, name)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("group_rows", [0, 1, 2, 3])
def test_vspw_nll_matches_the_reference(group_rows: int) -> None:
    z, labels = hand_made_batch()
    loss, grad = _torch_loss_and_grad(lambda a, b: upsampled_log_prob_nll(a, b, group_rows), z, labels)
    ref_loss, ref_grad = reference_vspw(z, labels, group_rows or len(z))
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-14)


def test_the_reductions_differ_on_this_batch() -> None:
    """The batch separates the rules: the tests above could not pass with the wrong reduction."""
    z, labels = hand_made_batch()
    values = [reference_ce(z, labels, "all")[0], reference_ce(z, labels, "valid")[0],
              reference_vspw(z, labels, 4)[0], reference_vspw(z, labels, 2)[0]]
    assert min(abs(a - b) for i, a in enumerate(values) for b in values[i + 1:]) > 5e-3
    # mmseg = valid x labelled fraction
    frac = (labels != IGNORE).mean()
    assert values[0] == pytest.approx(values[1] * frac, rel=1e-12)


def test_vspw_nll_upsamples_log_probabilities_not_logits() -> None:
    """No ignored pixel: still differs from CE of upsampled logits (issue 16, item 2)."""
    z, labels = hand_made_batch()
    labels = np.where(labels == IGNORE, 0, labels)
    zt, lt = torch.tensor(z), torch.tensor(labels)
    assert abs(upsampled_log_prob_nll(zt, lt).item() - seg_cross_entropy(zt, lt).item()) > 1e-3


def test_all_ignored_gives_zero_not_nan_with_gradient() -> None:
    z = torch.randn(2, 3, 3, 4, requires_grad=True)
    labels = torch.full((2, 7, 9), IGNORE)
    official_nll = torch.nn.NLLLoss(ignore_index=IGNORE)(
        torch.nn.functional.interpolate(torch.log_softmax(z, 1), (7, 9), mode="bilinear"), labels)
    assert torch.isnan(official_nll)  # what the official TCB code would train on
    for rule in (PixelLoss("official", "vspw", 1), PixelLoss("official", "mmseg"), PixelLoss("valid")):
        loss = rule(z, labels)
        assert loss.item() == 0.0
        loss.backward()
        assert torch.isfinite(z.grad).all() and not z.grad.any()
        z.grad = None


def test_pixel_loss_dispatch_and_groups_of_whole_clips() -> None:
    z, labels = hand_made_batch()
    zt, lt = torch.tensor(z), torch.tensor(labels)
    assert PixelLoss("valid", "vspw", 2)(zt, lt).item() == seg_cross_entropy(zt, lt).item()
    assert PixelLoss("official", "mmseg", 2)(zt, lt).item() == all_pixel_cross_entropy(zt, lt).item()
    # 2 clips of 2 frames, group_size 1 clip -> groups of 2 rows
    assert PixelLoss("official", "vspw", 1)(zt, lt, rows_per_clip=2).item() == pytest.approx(
        reference_vspw(z, labels, 2)[0], rel=1e-12)


@pytest.mark.parametrize("kwargs", [{"reduction": "mean"}, {"codebase": "torch"}, {"group_size": -1}])
def test_pixel_loss_rejects_unknown_settings(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        PixelLoss(**kwargs)


# ---------------------------------------------------------------------------------------------------------
# each family's losses() against the reference, on hand-made outputs (no forward pass needed)
# ---------------------------------------------------------------------------------------------------------

def _clip_labels(b: int, t: int) -> np.ndarray:
    """[B, T, 7, 9] labels whose labelled fraction differs per clip and frame (some frames all ignored)."""
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 3, size=(b, t, 7, 9))
    labels[0, :, :4] = IGNORE
    labels[1, -1] = IGNORE
    labels[-1, 0, :, 2:] = IGNORE
    return labels


def _grad_of(outputs, model, labels: np.ndarray) -> tuple[float, dict]:
    terms = model.losses(outputs, torch.tensor(labels))
    loss = sum(terms.values())
    loss.backward()
    return loss.item(), terms


@pytest.mark.parametrize("reduction", ["official", "valid"])
def test_cffm_losses(reduction: str) -> None:
    model = build_cffm(variant="b0", num_classes=3, loss_reduction=reduction)
    b, t = 2, 4
    rng = np.random.default_rng(1)
    z = rng.normal(size=(b, t + 1, 3, 3, 4))
    labels = _clip_labels(b, t)
    out = torch.tensor(z, requires_grad=True)
    loss, _ = _grad_of(out, model, labels)
    den = "all" if reduction == "official" else "valid"
    l_frames, g_frames = reference_ce(z[:, :t].reshape(b * t, 3, 3, 4), labels.reshape(b * t, 7, 9), den)
    l_target, g_target = reference_ce(z[:, t], labels[:, -1], den)
    assert loss == pytest.approx(0.5 * l_frames + l_target, rel=1e-12)
    ref = np.concatenate([0.5 * g_frames.reshape(b, t, 3, 3, 4), g_target[:, None]], axis=1)
    np.testing.assert_allclose(out.grad.numpy(), ref, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["official", "valid"])
def test_segformer_losses(reduction: str) -> None:
    model = build_segformer(variant="b0", num_classes=3, loss_reduction=reduction)
    z, labels = hand_made_batch()
    out = torch.tensor(z, requires_grad=True)
    loss, _ = _grad_of(out, model, labels[:, None])
    ref_loss, ref_grad = reference_ce(z, labels, "all" if reduction == "official" else "valid")
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(out.grad.numpy(), ref_grad, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["official", "valid"])
def test_tcb_losses_groups_of_two_clips(reduction: str) -> None:
    model = build_tcb(blend="ppm", encoder="mit_b0", channels=8, aux_channels=8, num_classes=3,
                      loss_reduction=reduction)
    b, t = 4, 4
    rng = np.random.default_rng(2)
    logits, aux = rng.normal(size=(b, 3, 3, 4)) * 2, rng.normal(size=(b, t, 3, 3, 4)) * 2
    labels = _clip_labels(b, t)
    out = {"logits": torch.tensor(logits, requires_grad=True), "aux": torch.tensor(aux, requires_grad=True)}
    loss, terms = _grad_of(out, model, labels)
    flat_aux, flat_labels = aux.reshape(b * t, 3, 3, 4), labels.reshape(b * t, 7, 9)
    if reduction == "official":  # 2 clips per DataParallel chunk: 2 target rows / 8 frame rows per group
        l_seg, g_seg = reference_vspw(logits, labels[:, -1], 2)
        l_aux, g_aux = reference_vspw(flat_aux, flat_labels, 2 * t)
    else:
        l_seg, g_seg = reference_ce(logits, labels[:, -1], "valid")
        l_aux, g_aux = reference_ce(flat_aux, flat_labels, "valid")
    assert terms["loss_seg"].item() == pytest.approx(l_seg, rel=1e-12)
    assert terms["loss_aux"].item() == pytest.approx(0.4 * l_aux, rel=1e-12)
    np.testing.assert_allclose(out["logits"].grad.numpy(), g_seg, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(out["aux"].grad.numpy(), 0.4 * g_aux.reshape(b, t, 3, 3, 4), rtol=1e-10, atol=1e-14)


def test_image_baselines_official_rules() -> None:
    """ResNet baselines follow the VSPW train.py (chunks of 4 images); Swin UperNet follows mmseg."""
    assert baseline_loss("resnet101") == PixelLoss("official", "vspw", 4)
    assert baseline_loss("swin_t") == PixelLoss("official", "mmseg")
    assert baseline_loss("resnet101", "valid").reduction == "valid"
    psp = build_baseline(head="psp", backbone="resnet50", num_classes=3)
    assert psp.pixel_loss == PixelLoss("official", "vspw", 4)
    # ImageSegmenter.losses with the VSPW rule: one group of 4 images, aux weighted 0.4
    seg = ImageSegmenter(backbone=torch.nn.Identity(), head=torch.nn.Identity(), num_classes=3,
                         aux_head=torch.nn.Identity(), loss=baseline_loss("resnet101"))
    z, labels = hand_made_batch()
    z2 = np.random.default_rng(3).normal(size=z.shape)
    out = {"logits": torch.tensor(z, requires_grad=True), "aux": torch.tensor(z2, requires_grad=True)}
    loss, _ = _grad_of(out, seg, labels[:, None])
    (l1, g1), (l2, g2) = reference_vspw(z, labels, 4), reference_vspw(z2, labels, 4)
    assert loss == pytest.approx(l1 + 0.4 * l2, rel=1e-12)
    np.testing.assert_allclose(out["logits"].grad.numpy(), g1, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(out["aux"].grad.numpy(), 0.4 * g2, rtol=1e-10, atol=1e-14)


def test_stsc_ce_terms_are_mmseg_and_stcl_is_separate() -> None:
    model = build_stsc(variant="t", num_classes=3, stcl_weight=0.0)
    assert model.pixel_loss == PixelLoss("official", "mmseg")
    b, t = 2, 2
    labels = _clip_labels(b, t)
    rng = np.random.default_rng(4)
    z, z2 = rng.normal(size=(b * t, 3, 3, 4)), rng.normal(size=(b * t, 3, 3, 4))
    out = {"logits": torch.tensor(z, requires_grad=True), "aux": torch.tensor(z2, requires_grad=True),
           "num_frames": t}
    loss, terms = _grad_of(out, model, labels)
    assert set(terms) == {"loss_seg", "loss_aux"}  # stcl_weight 0: the contrastive term (ours) is off
    flat = labels.reshape(b * t, 7, 9)
    (l1, g1), (l2, g2) = reference_ce(z, flat, "all"), reference_ce(z2, flat, "all")
    assert loss == pytest.approx(l1 + 0.4 * l2, rel=1e-12)
    np.testing.assert_allclose(out["logits"].grad.numpy(), g1, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(out["aux"].grad.numpy(), 0.4 * g2, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("value", [None, "official", "valid"])
def test_recipe_loss_reduction_reaches_the_model(value: str | None) -> None:
    recipe = Path(__file__).resolve().parents[2] / "configs" / "segformer_b0_vspw.yaml"
    cfg = load_config(recipe, overrides=["model.num_classes=3", f"loss.reduction={value or 'null'}"])
    assert build_model(cfg).pixel_loss == PixelLoss(value or "official", "mmseg")
