"""STCNN training stages: losses against direct formulas, the margin rule, which parameters each step moves."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vidseg.engine.gan import MarginRule, bce_on_probabilities, call_with_frozen_weights
from vidseg.engine.stcnn_stages import (
    FramePredStage,
    JointStage,
    OnlineStage,
    SegBranchStage,
    StcnnStepHook,
    gan_losses,
    imagenet_frame,
    joint_seg_loss,
    mask_bce,
    run_step,
    segbranch_loss,
    segbranch_param_groups,
    temporal_stack,
)
from vidseg.models.vos.discriminator import build_discriminator
from vidseg.models.vos.frame_pred import build_frame_pred_net
from vidseg.models.vos.seg_branch import build_seg_branch
from vidseg.models.vos.stcnn import build_stcnn

TINY = {"layers": (1, 1, 1, 1), "width": 8}
DELTA = 3


def _bce(logit: float, y: float) -> float:
    p = 1.0 / (1.0 + math.exp(-logit))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


# ------------------------------------------------------------------------------------------------ losses
def test_mask_bce_matches_direct_formula_and_ignores_void() -> None:
    logits = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]]])
    mask = torch.tensor([[[1, 0], [255, 1]]])
    expected = (_bce(0.5, 1) + _bce(-1.0, 0) + _bce(0.0, 1)) / 3
    assert mask_bce(logits, mask).item() == pytest.approx(expected, rel=1e-6)
    plain = torch.tensor([[[1, 0], [0, 1]]])
    ref = F.binary_cross_entropy_with_logits(logits[:, 0], plain.float())
    assert mask_bce(logits, plain).item() == pytest.approx(ref.item(), rel=1e-6)


def test_segbranch_and_joint_losses() -> None:
    g = torch.Generator().manual_seed(0)
    outs = [torch.randn(2, 1, 5, 6, generator=g) for _ in range(5)]
    mask = (torch.rand(2, 5, 6, generator=g) > 0.5).long()
    per = [F.binary_cross_entropy_with_logits(o[:, 0], mask.float()).item() for o in outs]
    seg = segbranch_loss(outs, mask)
    assert seg["bce_fused"].item() == pytest.approx(per[-1], rel=1e-6)
    assert seg["bce_side"].item() == pytest.approx(sum(per[:-1]), rel=1e-6)
    joint = joint_seg_loss(outs, mask, iteration=30, total=120)
    assert joint["bce_fused"].item() == pytest.approx(per[-1], rel=1e-6)
    assert joint["bce_side"].item() == pytest.approx(0.75 * sum(per[:-1]), rel=1e-6)
    assert joint_seg_loss(outs, mask, 120, 120)["bce_side"].item() == 0.0


def test_gan_losses_direct() -> None:
    pred, target = torch.full((1, 3, 2, 2), 0.5), torch.zeros(1, 3, 2, 2)
    d_real, d_fake, d_gen = torch.tensor([[0.8]]), torch.tensor([[0.3]]), torch.tensor([[0.3]])
    t = gan_losses(pred, target, d_real, d_fake, d_gen, beta=0.001)
    assert t["mse"].item() == pytest.approx(0.25)
    assert t["adv"].item() == pytest.approx(0.001 * -math.log(0.3), rel=1e-6)
    assert t["d_real"].item() == pytest.approx(-math.log(0.8), rel=1e-6)
    assert t["d_fake"].item() == pytest.approx(-math.log(0.7), rel=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert bce_on_probabilities(torch.tensor([0.8]), 1.0).dtype == torch.float32


def test_input_normalisation() -> None:
    frames = torch.tensor([0.0, 127.5, 255.0]).view(1, 1, 3, 1, 1).expand(2, 2, 3, 1, 1)
    stack = temporal_stack(frames)
    assert stack.shape == (2, 6, 1, 1) and stack[0, :3, 0, 0].tolist() == [-1.0, 0.0, 1.0]
    frame = torch.full((1, 3, 1, 1), 255.0)
    expected = [(1 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), strict=True)]
    assert imagenet_frame(frame).flatten().tolist() == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------------------------------------ margin rule
@pytest.mark.parametrize(("start", "err_real", "err_fake", "after"), [
    ((True, True), 0.5, 0.5, (True, True)),     # balanced: nothing changes
    ((True, True), 0.2, 0.5, (False, True)),    # D too good on real: stop D
    ((True, True), 0.5, 0.1, (False, True)),    # D too good on fake: stop D
    ((True, True), 0.8, 0.5, (True, False)),    # D losing on real: stop G
    ((True, True), 0.5, 0.75, (True, False)),   # D losing on fake: stop G
    ((True, True), 0.2, 0.8, (True, True)),     # both stopped -> both re-enabled
    ((False, True), 0.5, 0.5, (False, True)),   # a paused D stays paused while balanced
    ((True, False), 0.5, 0.5, (True, False)),   # joint start: G paused until the rule re-enables it
    ((True, False), 0.1, 0.5, (True, True)),    # D stops too -> both re-enabled
    ((False, True), 0.9, 0.5, (True, True)),
    ((True, True), 0.3, 0.7, (True, True)),     # boundaries are strict inequalities
])
def test_margin_rule_table(start, err_real, err_fake, after) -> None:
    rule = MarginRule(0.3, *start)
    assert rule.observe(err_real, err_fake) == after
    clone = MarginRule()
    clone.load_state_dict(rule.state_dict())
    assert (clone.update_d, clone.update_g) == after


def test_frozen_call_gives_no_gradient_to_the_module() -> None:
    lin = torch.nn.Linear(3, 1)
    x = torch.randn(4, 3, requires_grad=True)
    call_with_frozen_weights(lin, x).sum().backward()
    assert lin.weight.grad is None and x.grad is not None
    assert torch.allclose(x.grad, lin.weight.detach().expand(4, 3))


# ------------------------------------------------------------------------------------------------ steps
def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _changed(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(v, before[k]) for k, v in module.named_parameters())


def _clip(t: int, h: int = 40, w: int = 56) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(2, t, 3, h, w, generator=g) * 255
    labels = torch.full((2, t, h, w), 255, dtype=torch.long)
    labels[:, -1] = (torch.rand(2, h, w, generator=g) > 0.6).long()
    return frames, labels


@pytest.mark.parametrize(("update_d", "update_g"), [(True, True), (True, False), (False, True)])
def test_framepred_step_moves_only_the_active_networks(update_d: bool, update_g: bool) -> None:
    torch.manual_seed(0)
    stage = FramePredStage(generator=build_frame_pred_net(frame_nums=DELTA, relu=False, **TINY),
                           discriminator=build_discriminator("small", width=4))
    hook = StcnnStepHook("framepred", lr=1e-3, weight_decay=2e-4, lr_d=1e-3)
    hook.rule.update_d, hook.rule.update_g = update_d, update_g
    opts = hook.build_optimizers(stage)
    g0, d0 = _snapshot(stage.generator), _snapshot(stage.discriminator)
    scalars = run_step(stage, opts, hook, *_clip(DELTA + 1), iteration=0, total=10)
    assert set(scalars) == {"loss/mse", "loss/adv", "loss/d_real", "loss/d_fake"}
    assert _changed(stage.generator, g0) == update_g
    assert _changed(stage.discriminator, d0) == update_d


def test_discriminator_gradient_is_its_own_loss_only() -> None:
    torch.manual_seed(0)
    stage = FramePredStage(generator=build_frame_pred_net(frame_nums=DELTA, relu=False, **TINY),
                           discriminator=build_discriminator("small", width=4))
    stage.train()
    frames, labels = _clip(DELTA + 1)
    terms = stage.losses(stage(frames), labels)
    sum(terms.values()).backward()
    combined = [p.grad.clone() for p in stage.discriminator.parameters()]
    stage.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    stage2 = FramePredStage(generator=build_frame_pred_net(frame_nums=DELTA, relu=False, **TINY),
                            discriminator=build_discriminator("small", width=4))
    stage2.load_state_dict(stage.state_dict())
    # the D loss alone (train-mode BN uses batch statistics, so the buffers the first pass moved do not matter)
    stage2.train()
    out = stage2(frames)
    (bce_on_probabilities(out["d_real"], 1.0) + bce_on_probabilities(out["d_fake"], 0.0)).backward()
    own = [p.grad for p in stage2.discriminator.parameters()]
    assert len(own) == len(combined)
    for a, b in zip(combined, own, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_joint_step_seg_gets_no_gan_gradient_and_g_starts_paused() -> None:
    torch.manual_seed(0)
    model = build_stcnn(frame_nums=DELTA, fpn_dim=16, ppm_dim=16, **TINY)
    stage = JointStage(model=model, discriminator=build_discriminator("small", width=4))
    hook = StcnnStepHook("joint", lr=1e-3, weight_decay=5e-4, lr_g=1e-3, lr_d=1e-3, gan_weight_decay=5e-4,
                         update_g_at_start=False)
    opts = hook.build_optimizers(stage)
    assert hook.active() == {"seg", "D"}
    pred0 = {k: v.clone() for k, v in model.named_parameters() if k.startswith("pred_")}
    seg0 = {k: v.clone() for k, v in model.named_parameters() if k.startswith("seg_")}
    scalars = run_step(stage, opts, hook, *_clip(DELTA + 1), iteration=3, total=12)
    assert {"loss/bce_fused", "loss/bce_side", "loss/mse", "loss/d_real"} <= set(scalars)
    params = dict(model.named_parameters())
    assert all(torch.equal(params[k], v) for k, v in pred0.items())  # G paused
    assert any(not torch.equal(params[k], v) for k, v in seg0.items())
    assert stage.progress == (3, 12)
    # the segmentation loss alone sends no gradient into the temporal branch
    model.zero_grad(set_to_none=True)
    frames, labels = _clip(DELTA + 1)
    out = stage(frames)
    sum(joint_seg_loss(out["logits"], labels[:, -1], 0, 1).values()).backward()
    assert all(p.grad is None for p in model.pred_parameters())


def test_online_step_leaves_the_pred_branch_unchanged() -> None:
    torch.manual_seed(0)
    model = build_stcnn(frame_nums=DELTA, fpn_dim=16, ppm_dim=16, **TINY)
    stage = OnlineStage(model=model)
    hook = StcnnStepHook("online", lr=1e-2, weight_decay=5e-4)
    opts = hook.build_optimizers(stage)
    pred0 = {k: v.clone() for k, v in model.named_parameters() if k.startswith("pred_")}
    seg0 = _snapshot(model.seg_encoder)
    frames, labels = _clip(DELTA + 1)
    frames[:, :-1] = frames[:, -1:]  # the dream image repeated delta times
    for it in range(2):
        scalars = run_step(stage, opts, hook, frames, labels, iteration=it, total=2)
    assert set(scalars) == {"loss/bce_fused"}
    params = dict(model.named_parameters())
    assert all(torch.equal(params[k], v) for k, v in pred0.items())
    assert _changed(model.seg_encoder, seg0)


def test_segbranch_groups_and_step() -> None:
    torch.manual_seed(0)
    stage = SegBranchStage(branch=build_seg_branch(fpn_dim=16, ppm_dim=16, **TINY))
    groups = segbranch_param_groups(stage, lr=1e-3, weight_decay=5e-4)
    names = dict(stage.named_parameters())
    n_bias = sum(1 for n in names if n.endswith("bias"))
    assert len(groups[0]["params"]) == n_bias and groups[0]["lr"] == 2e-3 and groups[0]["weight_decay"] == 0.0
    assert len(groups[1]["params"]) == len(names) - n_bias and groups[1]["weight_decay"] == 5e-4
    hook = StcnnStepHook("segbranch", lr=1e-3, weight_decay=5e-4)
    opts = hook.build_optimizers(stage)
    before = _snapshot(stage)
    scalars = run_step(stage, opts, hook, *_clip(1), iteration=0, total=5)
    assert set(scalars) == {"loss/bce_fused", "loss/bce_side"} and _changed(stage, before)


def test_hook_rejects_a_module_of_another_stage() -> None:
    stage = SegBranchStage(branch=build_seg_branch(fpn_dim=16, ppm_dim=16, **TINY))
    with pytest.raises(Exception, match="stage"):
        StcnnStepHook("online", lr=1e-4, weight_decay=5e-4).build_optimizers(stage)


def test_calibrate_frozen_bn_normalises_the_encoder() -> None:
    from vidseg.engine.stcnn_stages import calibrate_frozen_bn

    torch.manual_seed(0)
    model = build_stcnn(frame_nums=DELTA, fpn_dim=16, ppm_dim=16, **TINY)
    frames, _ = _clip(DELTA + 1)
    stack, frame = temporal_stack(frames[:, :-1]), imagenet_frame(frames[:, -1])
    before = model.seg_encoder(frame)[-1].std().item()
    n = calibrate_frozen_bn(model, stack, frame)
    assert n > 10
    bn1 = model.seg_encoder.bn1
    z = bn1(model.seg_encoder.conv1(frame))
    assert torch.allclose(z.mean(dim=(0, 2, 3)), bn1.bias, atol=1e-4)  # normalised, then the affine part
    after = model.seg_encoder(frame)[-1].std().item()
    assert before < 1e-4 and after > 1e-3 and after > 100 * before  # vanishing activations restored


def test_calibrate_with_reinit_touches_only_the_spatial_branch() -> None:
    from vidseg.engine.stcnn_stages import calibrate_frozen_bn

    torch.manual_seed(0)
    model = build_stcnn(frame_nums=DELTA, fpn_dim=16, ppm_dim=16, **TINY)
    pred0 = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("pred_")}
    conv0 = model.seg_encoder.conv1.weight.clone()
    frames, _ = _clip(DELTA + 1)
    calibrate_frozen_bn(model, temporal_stack(frames[:, :-1]), imagenet_frame(frames[:, -1]), reinit=True)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in pred0.items())  # weights and BN buffers
    assert not torch.equal(model.seg_encoder.conv1.weight, conv0)
    fan_in = conv0[0].numel()
    assert abs(model.seg_encoder.conv1.weight.std().item() - (2.0 / fan_in) ** 0.5) < 0.2 * (2.0 / fan_in) ** 0.5
