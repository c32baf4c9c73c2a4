"""STCNN's four training stages as trainable modules, losses, optimisers and a step hook for the trainer.

Every stage reads clips of raw RGB frames ``frames [B, T, 3, H, W]`` (float, 0..255, target frame last) and
labels ``[B, T, H, W]`` whose last frame is the binary object mask (0 / 1, 255 = void, ignored):

==========  =========================================================  ======================================
stage        loss (official script)                                      optimisers (first one is scheduled)
==========  =========================================================  ======================================
framepred    MSE(G(x), next frame) + 0.001 BCE(D(G(x)), 1);              G: Adam 1e-7, D: Adam 1e-4, wd 2e-4;
             D: BCE(D(real), 1) + BCE(D(G(x)), 0)                         margin rule from (True, True)
             (``train_FramePred.py``), T = delta + 1
segbranch    sum over the five outputs of BCE (``train_SegBranch.py``),  SGD mom 0.9: weights lr, wd 5e-4;
             T = 1                                                        biases 2 lr, no wd; poly 0.9
joint        BCE(fused) + (1 - it / total) sum BCE(side outputs) for     seg: SGD 1e-4 wd 5e-4 mom 0.9;
             the spatial branch; the framepred G and D losses for the     G: Adam 1e-8, D: Adam 1e-4, wd 5e-4;
             temporal branch (``train_JointModel.py``), T = delta + 1     margin rule from (D on, G off)
online       BCE(fused) on lucid-dream pairs, temporal input = the       seg: SGD 1e-4 wd 5e-4 mom 0.9;
             image repeated delta times (``train_online_dream.py``)       temporal branch frozen
==========  =========================================================  ======================================

Inputs are normalised inside the modules as the official code does: the temporal stack ``x / 127.5 - 1``
(channels of the delta frames concatenated oldest first), the current frame ``x / 255`` then ImageNet
mean/std, the prediction target (the frame after the stack) ``x / 127.5 - 1`` resized bilinearly to the
prediction's size (1/4).

One backward pass per iteration: the official scripts run separate backward passes for D, G and the
segmentation branch. Their gradients reach disjoint parameters (the temporal features reach the spatial
branch detached; D's input is the detached prediction; the generator's adversarial term goes through D with
detached weights, :func:`vidseg.engine.gan.call_with_frozen_weights`), so the sum of the terms has the same
gradients, except that the generator's adversarial term sees D before (not after) D's update of the same
iteration: a documented deviation that lets DDP all-reduce once per step. Optimisers whose network is paused
by the margin rule do not step (their gradients are discarded).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidseg.engine.gan import MarginRule, bce_on_probabilities, call_with_frozen_weights
from vidseg.errors import ConfigError
from vidseg.models.vos.norm import FrozenStatsBatchNorm2d

STAGES = ("framepred", "segbranch", "joint", "online")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VOID = 255


# ----------------------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------------------

def temporal_stack(frames: torch.Tensor) -> torch.Tensor:
    """Previous frames [B, delta, 3, H, W] (0..255) -> the temporal input [B, 3 * delta, H, W] in [-1, 1]."""
    b, d, c, h, w = frames.shape
    return (frames.clamp(0, 255) / 127.5 - 1.0).reshape(b, d * c, h, w)


def imagenet_frame(frame: torch.Tensor) -> torch.Tensor:
    """Current frame [B, 3, H, W] (0..255) -> ``x / 255`` normalised with the ImageNet mean and std."""
    mean = frame.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = frame.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (frame / 255.0 - mean) / std


def prediction_target(frame: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The frame to predict [B, 3, H, W] (0..255) -> [-1, 1] resized bilinearly to ``size`` (h, w)."""
    target = frame.clamp(0, 255) / 127.5 - 1.0
    if tuple(target.shape[-2:]) != tuple(size):
        target = F.interpolate(target, size=tuple(size), mode="bilinear", align_corners=False)
    return target


# ----------------------------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------------------------

def mask_bce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean BCE-with-logits over the non-void pixels (``nn.BCEWithLogitsLoss`` when nothing is void).

    Args:
        logits: [B, 1, H, W].
        mask: [B, H, W] with 0 / 1 (any non-zero, non-void id counts as object) and 255 = void.
    """
    valid = mask != VOID
    target = ((mask != 0) & valid).to(logits.dtype)
    per_pixel = F.binary_cross_entropy_with_logits(logits[:, 0].float(), target.float(), reduction="none")
    return (per_pixel * valid).sum() / valid.sum().clamp(min=1)


def segbranch_loss(outputs: Sequence[torch.Tensor], mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Stage 2: BCE of the fused output plus BCE of every side output, each weight 1."""
    return {"bce_fused": mask_bce(outputs[-1], mask),
            "bce_side": torch.stack([mask_bce(o, mask) for o in outputs[:-1]]).sum()}


def joint_seg_loss(outputs: Sequence[torch.Tensor], mask: torch.Tensor, iteration: int,
                   total: int) -> dict[str, torch.Tensor]:
    """Stage 3: BCE(fused) + (1 - iteration / total) x sum of the side outputs' BCE."""
    weight = 1.0 - iteration / max(total, 1)
    return {"bce_fused": mask_bce(outputs[-1], mask),
            "bce_side": weight * torch.stack([mask_bce(o, mask) for o in outputs[:-1]]).sum()}


def online_loss(outputs: Sequence[torch.Tensor], mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Stage 4: BCE of the fused output only."""
    return {"bce_fused": mask_bce(outputs[-1], mask)}


def gan_losses(pred: torch.Tensor, target: torch.Tensor, d_real: torch.Tensor, d_fake: torch.Tensor,
               d_gen: torch.Tensor, beta: float = 0.001) -> dict[str, torch.Tensor]:
    """Generator and discriminator terms (D outputs are probabilities, as the official Inception3 gives).

    Args:
        pred, target: predicted and real next frame [B, 3, h, w] in [-1, 1].
        d_real: D(target); d_fake: D(pred.detach()); d_gen: D(pred) with D's weights detached.
        beta: weight of the adversarial term.

    Returns:
        ``mse`` and ``adv`` (beta x BCE(d_gen, 1)) train G; ``d_real`` (BCE(d_real, 1)) and ``d_fake``
        (BCE(d_fake, 0)) train D and drive the margin rule.
    """
    with torch.autocast(device_type=pred.device.type, enabled=False):
        mse = F.mse_loss(pred.float(), target.float())
    return {"mse": mse, "adv": beta * bce_on_probabilities(d_gen, 1.0),
            "d_real": bce_on_probabilities(d_real, 1.0), "d_fake": bce_on_probabilities(d_fake, 0.0)}


# ----------------------------------------------------------------------------------------------------------
# the trainable module of each stage
# ----------------------------------------------------------------------------------------------------------

class StageModule(nn.Module):
    """Base of the per-stage training modules: ``forward(frames)`` then ``losses(outputs, labels)``.

    Attributes:
        stage: one of :data:`STAGES`.
        progress: (iteration, total) of the run, set by :class:`StcnnStepHook` before each step.
    """

    stage = ""

    def __init__(self) -> None:
        super().__init__()
        self.progress = (0, 1)

    def exported(self) -> nn.Module:
        """The network this stage trains (what ``model_final.pt`` holds)."""
        raise NotImplementedError


class _Adversarial(StageModule):
    """Shared part of the stages that train a frame predictor against a discriminator."""

    def __init__(self, discriminator: nn.Module, beta: float) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.beta = beta

    def _gan_outputs(self, pred: torch.Tensor, next_frame: torch.Tensor) -> dict[str, torch.Tensor]:
        target = prediction_target(next_frame, pred.shape[-2:])
        return {"pred": pred, "target": target, "d_real": self.discriminator(target),
                "d_fake": self.discriminator(pred.detach()),
                "d_gen": call_with_frozen_weights(self.discriminator, pred)}

    def _gan_terms(self, out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return gan_losses(out["pred"], out["target"], out["d_real"], out["d_fake"], out["d_gen"], self.beta)


class FramePredStage(_Adversarial):
    """Stage 1: ``generator`` (FramePredNet) against ``discriminator``; frames [B, delta + 1, 3, H, W]."""

    stage = "framepred"

    def __init__(self, *, generator: nn.Module, discriminator: nn.Module, beta: float = 0.001) -> None:
        super().__init__(discriminator, beta)
        self.generator = generator

    def exported(self) -> nn.Module:
        return self.generator

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        pred = self.generator(temporal_stack(frames[:, :-1]))
        return self._gan_outputs(pred, frames[:, -1])

    def losses(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._gan_terms(outputs)


class SegBranchStage(StageModule):
    """Stage 2: the spatial branch alone (SegBranch) on image/mask pairs; frames [B, 1, 3, H, W]."""

    stage = "segbranch"

    def __init__(self, *, branch: nn.Module) -> None:
        super().__init__()
        self.branch = branch

    def exported(self) -> nn.Module:
        return self.branch

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        return self.branch(imagenet_frame(frames[:, -1]))

    def losses(self, outputs: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return segbranch_loss(outputs, labels[:, -1])


class JointStage(_Adversarial):
    """Stage 3: STCNN with its discriminator on DAVIS 2016 clips; frames [B, delta + 1, 3, H, W]."""

    stage = "joint"

    def __init__(self, *, model: nn.Module, discriminator: nn.Module, beta: float = 0.001) -> None:
        super().__init__(discriminator, beta)
        self.model = model

    def exported(self) -> nn.Module:
        return self.model

    def forward(self, frames: torch.Tensor) -> dict[str, Any]:
        logits, pred = self.model(temporal_stack(frames[:, :-1]), imagenet_frame(frames[:, -1]))
        return {"logits": logits, **self._gan_outputs(pred, frames[:, -1])}

    def losses(self, outputs: dict[str, Any], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        seg = joint_seg_loss(outputs["logits"], labels[:, -1], *self.progress)
        return {**seg, **self._gan_terms(outputs)}


class OnlineStage(StageModule):
    """Stage 4: STCNN fine-tuned on one video's lucid-dream pairs; its temporal branch is frozen here.

    frames [B, delta + 1, 3, H, W]: the dream image repeated delta times, then the dream image.
    """

    stage = "online"

    def __init__(self, *, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        for p in model.pred_parameters():
            p.requires_grad_(False)

    def exported(self) -> nn.Module:
        return self.model

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        logits, _ = self.model(temporal_stack(frames[:, :-1]), imagenet_frame(frames[:, -1]))
        return logits

    def losses(self, outputs: list[torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return online_loss(outputs, labels[:, -1])


def _has_frozen_bn(module: nn.Module) -> bool:
    return any(isinstance(m, FrozenStatsBatchNorm2d) for m in module.modules())


@torch.no_grad()
def calibrate_frozen_bn(model: nn.Module, *inputs: torch.Tensor, reinit: bool = False) -> int:
    """Set the statistics of every frozen-statistics BN to those of its input on one forward pass.

    The spatial branch's BNs never update their statistics (official ``freeze_bn``); the official model gets
    them from ImageNet weights. A network trained from scratch (tests, the CPU demo) would keep mean 0 /
    variance 1 and its activations vanish through the encoder; this data-dependent initialisation stands in
    for the pretrained statistics. Layers are calibrated in forward order, so each sees normalised inputs;
    variances are floored at 0.01.

    Args:
        model: any module containing :class:`vidseg.models.vos.norm.FrozenStatsBatchNorm2d` layers.
        inputs: a representative batch for ``model(*inputs)``.
        reinit: first re-initialise the convolutions of every child module that has frozen BNs (Kaiming
            normal, fan-in): the official N(0, 0.01) initialisation, once normalised, makes SGD steps huge
            relative to the weights and the logits explode within a few steps.

    Returns:
        the number of calibrated layers.
    """

    def set_stats(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].float()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        # floor: channels that are constant over the batch (e.g. after global pooling) must not be blown up
        module.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False).clamp(min=1e-2))

    if reinit:
        for child in model.children():
            if _has_frozen_bn(child):
                for conv in (m for m in child.modules() if isinstance(m, nn.Conv2d)):
                    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    layers = [m for m in model.modules() if isinstance(m, FrozenStatsBatchNorm2d)]
    hooks = [m.register_forward_pre_hook(set_stats) for m in layers]
    was_training = model.training
    model.eval()  # the other BNs keep their buffers (STCNN's temporal BNs use batch statistics in eval)
    try:
        model(*inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return len(layers)


# ----------------------------------------------------------------------------------------------------------
# optimisers and the trainer hook
# ----------------------------------------------------------------------------------------------------------

def segbranch_param_groups(module: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """Official stage-2 groups: biases at 2 x lr without weight decay, everything else lr with ``weight_decay``.

    Returns two groups (biases first, as in ``train_SegBranch.py``); frozen parameters are left out.
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in named if n.endswith("bias")], "lr": 2 * lr, "weight_decay": 0.0, "lr_mult": 2.0},
        {"params": [p for n, p in named if not n.endswith("bias")], "lr": lr, "weight_decay": weight_decay,
         "lr_mult": 1.0},
    ]


def _trainable(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad]


class StcnnStepHook:
    """Optimisers, per-step switches and margin-rule state of one STCNN stage, for the trainer.

    The trainer asks :meth:`build_optimizers` once (the first optimiser gets the learning-rate schedule),
    calls :meth:`begin` before each step, steps only the optimisers named by :meth:`active`, and hands the
    step's all-reduced scalars (``loss/d_real``, ``loss/d_fake``) to :meth:`observe`.

    Args:
        stage: one of :data:`STAGES`.
        lr, weight_decay, momentum: the segmentation SGD (stages 2-4) or the generator's Adam (stage 1: lr).
        lr_g, lr_d, gan_weight_decay: the generator / discriminator Adam of the joint stage (lr_g) and
            both adversarial stages (lr_d, gan_weight_decay).
        margin, update_g_at_start: the margin rule (0.3; joint training starts with G paused).
    """

    def __init__(self, stage: str, *, lr: float, weight_decay: float, momentum: float = 0.9, lr_g: float = 1e-8,
                 lr_d: float = 1e-4, gan_weight_decay: float = 2e-4, margin: float = 0.3,
                 update_g_at_start: bool = True) -> None:
        if stage not in STAGES:
            raise ConfigError(f"unknown STCNN stage {stage!r} (use one of {', '.join(STAGES)})")
        self.stage = stage
        self.lr, self.weight_decay, self.momentum = lr, weight_decay, momentum
        self.lr_g, self.lr_d, self.gan_weight_decay = lr_g, lr_d, gan_weight_decay
        self.rule = MarginRule(margin=margin, update_d=True, update_g=update_g_at_start)

    def build_optimizers(self, module: StageModule) -> dict[str, torch.optim.Optimizer]:
        """The stage's optimisers by name (``seg``, ``G``, ``D``), the scheduled one first."""
        if module.stage != self.stage:
            raise ConfigError(f"STCNN step hook for stage {self.stage!r} got a {module.stage!r} module")
        adam_d = {"lr": self.lr_d, "weight_decay": self.gan_weight_decay}
        if self.stage == "framepred":
            return {"G": torch.optim.Adam(module.generator.parameters(), lr=self.lr, weight_decay=self.weight_decay),
                    "D": torch.optim.Adam(module.discriminator.parameters(), **adam_d)}
        if self.stage == "segbranch":
            groups = segbranch_param_groups(module, self.lr, self.weight_decay)
            return {"seg": torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum)}
        seg = torch.optim.SGD(_trainable(module.model.seg_parameters()), lr=self.lr, momentum=self.momentum,
                              weight_decay=self.weight_decay)
        if self.stage == "online":
            return {"seg": seg}
        return {"seg": seg,
                "G": torch.optim.Adam(module.model.pred_parameters(), lr=self.lr_g, weight_decay=self.gan_weight_decay),
                "D": torch.optim.Adam(module.discriminator.parameters(), **adam_d)}

    def begin(self, module: StageModule, iteration: int, total: int) -> None:
        """Tell the module where the run is (the joint stage's side-output weight decays with it)."""
        module.progress = (iteration, total)

    def active(self) -> set[str]:
        """Names of the optimisers that step in the coming iteration."""
        if self.stage in ("segbranch", "online"):
            return {"seg"}
        names = {"D"} if self.rule.update_d else set()
        if self.rule.update_g:
            names.add("G")
        return names | ({"seg"} if self.stage == "joint" else set())

    def observe(self, scalars: dict[str, float]) -> None:
        """Update the margin rule from the step's discriminator losses (adversarial stages only)."""
        if self.stage in ("framepred", "joint"):
            self.rule.observe(scalars["loss/d_real"], scalars["loss/d_fake"])

    def state_dict(self) -> dict[str, Any]:
        return {"rule": self.rule.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rule.load_state_dict(state["rule"])


def run_step(module: StageModule, optimizers: dict[str, torch.optim.Optimizer], hook: StcnnStepHook,
             frames: torch.Tensor, labels: torch.Tensor, iteration: int, total: int) -> dict[str, float]:
    """One optimisation step outside the trainer (what :class:`vidseg.engine.trainer.Trainer` does with the hook,
    without DDP, accumulation or autocast). Returns the loss terms as ``loss/<name>`` floats."""
    hook.begin(module, iteration, total)
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    terms = module.losses(module(frames), labels)
    sum(t.float() for t in terms.values()).backward()
    for name in hook.active():
        optimizers[name].step()
    scalars = {f"loss/{k}": float(v.detach()) for k, v in terms.items()}
    hook.observe(scalars)
    return scalars
