"""STCNN (Xu et al., CVPR 2019): spatial-temporal CNN for semi-supervised video object segmentation.

``STCNN.forward(stack, frame)`` runs the temporal coherence branch on the previous ``delta`` frames (predicting
the next frame at 1/4 resolution) and the spatial branch on the current frame; the spatial decoder fuses the
temporal decoder's features, **detached** (the segmentation loss never reaches the temporal branch), at
three levels. It returns the five logit maps, all bilinearly upsampled to the frame size, and the predicted
frame::

    logits, predicted = model(stack, frame)
    # stack [B, 3*delta, H, W] = the previous delta RGB frames, concatenated on channels, x / 127.5 - 1
    # frame [B, 3, H, W] = the current RGB frame, x / 255 then ImageNet mean/std
    # logits: 5 x [B, 1, H, W]: [ppm, layer3, layer2, layer1 side outputs, fused]; logits[-1] is the output
    # predicted: [B, 3, H/4, W/4] in [-1, 1]

BatchNorm modes (spec §5.7). The official code never calls ``net.eval()``: its spatial-branch BNs keep
frozen statistics always, and the temporal-branch BNs run in train mode even at test time (batch statistics
of the single test sample). ``bn_mode="official"`` (the default) reproduces that test behaviour in
``model.eval()`` without updating any running buffer; ``bn_mode="eval"`` gives the usual eval mode (running
statistics everywhere). In train mode both behave like the official training (temporal BNs update their
statistics, spatial BNs stay frozen). :meth:`STCNN.set_bn_mode` switches later.

Parameter counts (ResNet-101, delta 4): 129,662,792 = temporal encoder 42,528,384 + temporal decoder
15,438,211 + spatial encoder 42,500,160 + joint decoder 29,196,037. The decoder variant is the joint model's
ReLU-free one (see :mod:`vidseg.models.vos.frame_pred`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidseg.models.vos.frame_pred import FramePredDecoder, build_frame_pred_encoder
from vidseg.models.vos.norm import PredBatchNorm2d
from vidseg.models.vos.resnet_caffe import CaffeResNet
from vidseg.models.vos.seg_branch import JointSegDecoder, build_seg_encoder

BN_MODES = ("official", "eval")


class STCNN(nn.Module):
    """The joint model; keys ``pred_encoder.*``, ``pred_decoder.*``, ``seg_encoder.*``, ``seg_decoder.*``.

    Args:
        pred_encoder: temporal encoder (:func:`~vidseg.models.vos.frame_pred.build_frame_pred_encoder`).
        pred_decoder: temporal decoder (:class:`~vidseg.models.vos.frame_pred.FramePredDecoder`).
        seg_encoder: spatial encoder (:func:`~vidseg.models.vos.seg_branch.build_seg_encoder`).
        seg_decoder: :class:`~vidseg.models.vos.seg_branch.JointSegDecoder`.
        bn_mode: ``"official"`` or ``"eval"`` (module docstring).

    Attributes:
        frame_nums: delta, the number of previous frames the temporal branch reads.
    """

    def __init__(self, *, pred_encoder: CaffeResNet, pred_decoder: FramePredDecoder, seg_encoder: CaffeResNet,
                 seg_decoder: JointSegDecoder, bn_mode: str = "official") -> None:
        super().__init__()
        self.pred_encoder = pred_encoder
        self.pred_decoder = pred_decoder
        self.seg_encoder = seg_encoder
        self.seg_decoder = seg_decoder
        self.frame_nums = pred_encoder.conv1.in_channels // 3
        self.bn_mode = "official"
        self.set_bn_mode(bn_mode)

    def set_bn_mode(self, bn_mode: str) -> None:
        """``"official"``: temporal BNs use batch statistics in eval mode; ``"eval"``: running statistics."""
        if bn_mode not in BN_MODES:
            raise ValueError(f"STCNN: bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
        self.bn_mode = bn_mode
        for m in self.pred_modules():
            for sub in m.modules():
                if isinstance(sub, PredBatchNorm2d):
                    sub.batch_stats_in_eval = bn_mode == "official"

    def pred_modules(self) -> tuple[nn.Module, nn.Module]:
        """The temporal branch (encoder, decoder)."""
        return self.pred_encoder, self.pred_decoder

    def pred_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the temporal branch (the generator's optimiser group)."""
        for m in self.pred_modules():
            yield from m.parameters()

    def seg_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the spatial branch (the segmentation optimiser group)."""
        yield from self.seg_encoder.parameters()
        yield from self.seg_decoder.parameters()

    def predict_frame(self, stack: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Temporal branch only: stack [B, 3*delta, H, W] -> (frame [B, 3, H/4, W/4], features [f16, f8, f4])."""
        return self.pred_decoder(self.pred_encoder(stack))

    def forward(self, stack: torch.Tensor, frame: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Segment ``frame`` using the previous frames in ``stack``.

        Args:
            stack: [B, 3 * delta, H, W], the previous delta frames (x / 127.5 - 1).
            frame: [B, 3, H, W], ImageNet-normalised.

        Returns:
            ``(logits, predicted)``: five logit maps [B, 1, H, W] (the fused output last) and the predicted
            next frame [B, 3, ceil(H/4), ceil(W/4)] in [-1, 1].
        """
        self._check_inputs(stack, frame)
        predicted, pred_feats = self.predict_frame(stack)
        pred_feats = [f.detach() for f in pred_feats]
        outs = self.seg_decoder(self.seg_encoder(frame), pred_feats)
        size = frame.shape[2:]
        return [F.interpolate(o, size=size, mode="bilinear", align_corners=False) for o in outs], predicted

    def _check_inputs(self, stack: torch.Tensor, frame: torch.Tensor) -> None:
        if stack.dim() != 4 or frame.dim() != 4 or stack.shape[1] != 3 * self.frame_nums or frame.shape[1] != 3:
            raise ValueError(f"STCNN: expected stack [B, {3 * self.frame_nums}, H, W] and frame [B, 3, H, W], "
                             f"got {tuple(stack.shape)} and {tuple(frame.shape)}")
        if stack.shape[0] != frame.shape[0] or stack.shape[2:] != frame.shape[2:]:
            raise ValueError(f"STCNN: stack {tuple(stack.shape)} and frame {tuple(frame.shape)} differ in "
                             "batch or size")
        coarse = stack.shape[0] * -(-stack.shape[2] // 32) * -(-stack.shape[3] // 32)
        if coarse < 2 and (self.training or self.bn_mode == "official"):
            raise ValueError(f"STCNN: input {tuple(stack.shape[2:])} is too small for batch statistics at 1/32 "
                             "resolution (the temporal BNs need more than one value); use frames over 32 px")


def freeze_pred_branch(model: STCNN) -> list[nn.Parameter]:
    """Stop gradients into the temporal branch (online fine-tuning); returns the frozen parameters.

    Only ``requires_grad`` changes: as in the official code, the temporal BNs keep their mode (batch
    statistics in train mode). Pass ``model.seg_parameters()`` to the optimiser.
    """
    frozen = list(model.pred_parameters())
    for p in frozen:
        p.requires_grad_(False)
    return frozen


def build_stcnn(*, frame_nums: int = 4, layers: Sequence[int] = (3, 4, 23, 3), width: int = 64,
                fpn_dim: int = 256, ppm_dim: int = 512, bn_mode: str = "official") -> STCNN:
    """Build STCNN; the defaults are the official model (ResNet-101 in both branches, delta 4).

    Args:
        frame_nums: delta, 3-6.
        layers: blocks per ResNet stage in both encoders ((3, 4, 23, 3) = ResNet-101).
        width: ResNet stem width (64); encoder widths are 4w, 8w, 16w, 32w.
        fpn_dim: spatial decoder width (256).
        ppm_dim: width of each PPM branch (512).
        bn_mode: ``"official"`` or ``"eval"``.
    """
    pred_encoder = build_frame_pred_encoder(frame_nums=frame_nums, layers=layers, width=width)
    pred_decoder = FramePredDecoder(in_channels=pred_encoder.out_channels, relu=False)
    seg_encoder = build_seg_encoder(layers=layers, width=width)
    seg_decoder = JointSegDecoder(in_channels=seg_encoder.out_channels, pred_channels=pred_decoder.feature_channels,
                                  fpn_dim=fpn_dim, ppm_dim=ppm_dim)
    return STCNN(pred_encoder=pred_encoder, pred_decoder=pred_decoder, seg_encoder=seg_encoder,
                 seg_decoder=seg_decoder, bn_mode=bn_mode)
