"""TCB: Temporal Context Blending (VSPW, Miao et al., CVPR 2021), faithful to the official code (spec §1.3-1.4).

Two blending modules on a CSAIL deep-stem ResNet-101 at output stride 8:

* ``TCBPPM`` (``tcb_ppm_r101``): the pyramid-pooled maps of layer4 are averaged uniformly over the frames
  of the clip, then the PSP head classifies the target. Deep supervision on layer3 of every frame (0.4).
* ``TCBOCR`` (``tcb_ocr_r101``, ``tcb_ocr_mem_r101``): the object-region contexts (soft regions from the
  ``dsn_head`` on layer3) are averaged over the frames (ST-OCR), then the OCR attention augments the target.
  With ``use_memory`` the contexts of earlier steps of the video are blended in at test time.

Frame order is supports first, target LAST (``[t-9, t-6, t-3, t]`` online). The official *test* rule uses
future supports ``t+3, t+6, t+9`` (past ones when ``t+9 >= len``): see :meth:`TCBBase.support_indices`.
Both blends are symmetric in the frames, so only which frames are used matters, not their order.

With no support frames (``dilations=()``) the models are the image baselines PSPNet / OCRNet (``pspnet_r101``,
``ocrnet_r101``): the mean over one frame is that frame.

State-dict keys follow the official layout (``encoder.*``, ``ppm_conv.*``, ``deepsup.*``, ``conv_3x3.*``,
``spatial_ocr_head.*``, ``head.*``, ``dsn_head.*``); official checkpoints only need the ``module.`` prefix
removed (:func:`vidseg.models.convert_tcb.convert_tcb_checkpoint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vidseg.errors import ConfigError
from vidseg.models.backbones.mit import MIT_VARIANTS, build_mit
from vidseg.models.backbones.resnet import DeepStemResNet
from vidseg.models.base import SegmenterDefaults
from vidseg.models.checkpoint import load_weights
from vidseg.models.convert_tcb import convert_csail_resnet, convert_tcb_checkpoint
from vidseg.models.heads.common import (
    FCNHead,
    InputShapeError,
    check_clip,
    check_labels,
    conv_bn_relu,
    resize,
)
from vidseg.models.heads.ocr import SpatialOCR, gather_object_contexts
from vidseg.models.heads.ppm import TemporalPPMHead
from vidseg.models.losses import PixelLoss

MEMORY_RULES = ("ema", "official")
# official training: DataParallel on 4 GPUs x 2 clips, loss = mean of the per-GPU NLLLoss means
TCB_LOSS_GROUP_SIZE = 2


class TCBBase(SegmenterDefaults, nn.Module):
    """Shared clip handling, losses and support-frame rules of the TCB models.

    Args:
        num_classes: output classes (124 for VSPW).
        dilations: support distances ``d1..dN`` (default ``(3, 6, 9)``); ``()`` gives the image model.
        deep_sup_scale: weight of the deep-supervision loss on all frames (0.4).
        encoder: the backbone (default: CSAIL deep-stem ResNet-101, output stride 8).
        loss: how both loss terms are formed (default: official, the TCB code's NLL of upsampled 1/8
            log-probabilities averaged per DataParallel chunk of 2 clips; see :class:`PixelLoss`).

    Attributes:
        support_offsets: online (causal) supports, e.g. ``(-9, -6, -3)``.
        offline_support_offsets: the official test rule's supports ``(3, 6, 9)``, replaced by
            ``(-3, -6, -9)`` near the end of a video (see :meth:`support_indices`).
        test_rule: ``"tcb"`` (online: past supports; offline: the official future-support rule).
    """

    def __init__(self, *, num_classes: int, dilations: Sequence[int] = (3, 6, 9), deep_sup_scale: float = 0.4,
                 encoder: nn.Module | None = None, loss: PixelLoss | None = None) -> None:
        super().__init__()
        dil = tuple(int(d) for d in dilations)
        if any(d <= 0 for d in dil) or len(set(dil)) != len(dil):
            raise ConfigError(f"TCB dilations must be distinct positive frame distances, got {dilations}")
        self.num_classes = num_classes
        self.dilations = dil
        self.support_offsets = tuple(-d for d in sorted(dil, reverse=True))
        self.offline_support_offsets = tuple(sorted(dil))
        self.test_rule = "tcb"
        self.deep_sup_scale = deep_sup_scale
        self.pixel_loss = loss if loss is not None else PixelLoss("official", "vspw", TCB_LOSS_GROUP_SIZE)
        self.encoder = encoder if encoder is not None else DeepStemResNet(depth=101, output_stride=8)

    @property
    def num_frames(self) -> int:
        """Frames per clip: supports + target."""
        return len(self.dilations) + 1

    def support_indices(self, t: int, length: int, mode: str = "online") -> list[int]:
        """Frame indices of the supports of target ``t`` in a video of ``length`` frames.

        ``online``: ``t - d`` clamped to 0 (the first frames repeat frame 0). ``offline`` (official
        test_clip2/dataset2 rule): ``t + d`` for every ``d``, or ``t - d`` for all of them when
        ``t + max(d) >= length``; indices are then clamped into the video.
        """
        if mode == "online":
            return [max(t + o, 0) for o in self.support_offsets]
        if mode != "offline":
            raise ConfigError(f"support mode must be 'online' or 'offline', got {mode!r}")
        offs = self.offline_support_offsets
        if offs and t + max(offs) >= length:
            offs = tuple(-d for d in offs)
        return [min(max(t + o, 0), length - 1) for o in offs]

    # -- per-frame and clip computations, implemented by the subclasses --------------------------------
    def frame_features(self, c3: torch.Tensor, c4: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def _blend(self, feats: Sequence[tuple[torch.Tensor, ...]]) -> torch.Tensor:
        raise NotImplementedError

    def _aux_logits(self, c3: torch.Tensor, per_frame: tuple[torch.Tensor, ...]) -> torch.Tensor:
        raise NotImplementedError

    # -- VideoSegmenter protocol ------------------------------------------------------------------------
    def encode_frame(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """image [B, 3, H, W] -> the per-frame features decode_clip needs (cacheable; see subclasses)."""
        _, _, c3, c4 = self.encoder(image)
        return self.frame_features(c3, c4)

    def decode_clip(self, features: Sequence[tuple[torch.Tensor, ...]], image_size: tuple[int, int]) -> torch.Tensor:
        """Per-frame features (supports first, target last) -> target logits [B, K, H, W] at ``image_size``."""
        return resize(self.decode_clip_lowres(features, image_size), image_size)

    def decode_clip_lowres(self, features: Sequence[tuple[torch.Tensor, ...]], image_size: tuple[int, int]
                           ) -> torch.Tensor:
        """The blended logits at the head's resolution (``decode_clip`` before its resize)."""
        if len(features) == 0:
            raise InputShapeError(f"{type(self).__name__}.decode_clip: needs at least the target's features")
        return self._blend(features)

    def _split_frames(self, frames: torch.Tensor) -> torch.Tensor:
        check_clip(frames, type(self).__name__)
        if not self.dilations:  # image model: the last frame is the target
            frames = frames[:, -1:]
        b, t = frames.shape[:2]
        return frames.transpose(0, 1).reshape(t * b, *frames.shape[2:])  # [T*B, 3, H, W], frame-major

    def forward(self, frames: torch.Tensor) -> Any:
        """frames [B, T, 3, H, W] (target last).

        Returns:
            eval: target logits [B, K, H, W]. train: ``{"logits": [B, K, h, w] target, "aux": [B, T, K, h, w]}``.
        """
        x = self._split_frames(frames)
        b, h, w = frames.shape[0], frames.shape[-2], frames.shape[-1]
        t = x.shape[0] // b
        _, _, c3, c4 = self.encoder(x)
        per_frame = self.frame_features(c3, c4)
        feats = [tuple(f[i * b:(i + 1) * b] for f in per_frame) for i in range(t)]
        if not self.training:
            return self.decode_clip(feats, (h, w))
        aux = self._aux_logits(c3, per_frame)
        aux = aux.reshape(t, b, *aux.shape[1:]).transpose(0, 1)
        return {"logits": self._blend(feats), "aux": aux}

    def losses(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``loss_seg`` = CE on the target, ``loss_aux`` = 0.4 x CE of the deep supervision on every frame.

        Args:
            outputs: train-mode output of :meth:`forward`.
            labels: [B, T, H, W] (255 = ignore); image models use the last ``T_out`` frames.
        """
        aux = outputs["aux"]
        b, t = aux.shape[:2]
        labels = labels[:, -t:]
        check_labels(labels, (b, t), type(self).__name__)
        terms = {"loss_seg": self.pixel_loss(outputs["logits"], labels[:, -1])}
        if self.deep_sup_scale:
            flat = labels.reshape(b * t, *labels.shape[2:])
            terms["loss_aux"] = self.deep_sup_scale * self.pixel_loss(aux.flatten(0, 1), flat, rows_per_clip=t)
        return terms


class TCBPPM(TCBBase):
    """TCB with spatial-temporal PPM blending (``Clip_PSP``); params 70,544,568 at 124 classes.

    Per-frame features (``encode_frame``): ``(last stage,)`` [B, C4, h, w] (``layer4``, C4 = 2048, on ResNet).

    Args:
        encoder: any backbone returning four feature maps and exposing ``out_channels`` (default ResNet-101).
        channels: width of the PPM levels and of its 3x3 conv (512 in the paper).
        aux_channels: hidden width of the deep-supervision head (512 in the paper).
    """

    def __init__(self, *, num_classes: int, dilations: Sequence[int] = (3, 6, 9), deep_sup_scale: float = 0.4,
                 encoder: nn.Module | None = None, pool_scales: Sequence[int] = (1, 2, 3, 6),
                 channels: int = 512, aux_channels: int = 512, loss: PixelLoss | None = None) -> None:
        super().__init__(num_classes=num_classes, dilations=dilations, deep_sup_scale=deep_sup_scale, encoder=encoder,
                         loss=loss)
        # The PPM reads the encoder's last stage, the deep supervision its 3rd stage (2048 / 1024 on ResNet).
        c3, c4 = tuple(self.encoder.out_channels)[2:4]
        self.ppm_conv = TemporalPPMHead(c4, channels, num_classes, pool_scales=pool_scales, dropout=0.1)
        self.deepsup = FCNHead(c3, aux_channels, num_classes, dropout=0.1, bias=False)

    def frame_features(self, c3: torch.Tensor, c4: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (c4,)

    def _blend(self, feats: Sequence[tuple[torch.Tensor, ...]]) -> torch.Tensor:
        pooled = [self.ppm_conv.pool(f[0]) for f in feats]
        mean = [torch.stack(level).mean(0) for level in zip(*pooled, strict=True)]  # uniform blend over frames
        return self.ppm_conv(feats[-1][0], mean)

    def _aux_logits(self, c3: torch.Tensor, per_frame: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self.deepsup(c3)


class TCBOCR(TCBBase):
    """TCB with spatial-temporal OCR blending (``ClipOCRNet``); params 58,096,568 at 124 classes.

    Per-frame features (``encode_frame``): ``(dsn_logits [B, K, h, w], feats [B, 512, h, w])`` (the soft object
    regions from layer3 and ``conv_3x3(layer4)``), so a streaming cache never recomputes them.

    Args:
        use_memory: at test time (eval mode), blend in the object-region contexts of earlier steps of the same
            video (``reset_state`` starts a new video). Training never uses the memory.
        memory: ``"ema"`` (default, the paper's intent): one memory per video,
            ``m <- momentum * m + (1 - momentum) * ctx`` with ``ctx`` the current clip's mean context, and the
            target attends to ``m``. ``"official"``: the official code's effective rule (spec §1.4): the mean
            over the per-frame contexts of the video's first step and of the current step (8 entries).
        memory_momentum: weight of the old memory in ``"ema"``.
        memory_size: FIFO length of the ``"official"`` rule (``memory_num``, 8).
    """

    def __init__(self, *, num_classes: int, dilations: Sequence[int] = (3, 6, 9), deep_sup_scale: float = 0.4,
                 encoder: nn.Module | None = None, use_memory: bool = False, memory: str = "ema",
                 memory_momentum: float = 0.8, memory_size: int = 8, loss: PixelLoss | None = None) -> None:
        super().__init__(num_classes=num_classes, dilations=dilations, deep_sup_scale=deep_sup_scale, encoder=encoder,
                         loss=loss)
        if memory not in MEMORY_RULES:
            raise ConfigError(f"TCB memory must be one of {MEMORY_RULES}, got {memory!r}")
        if not 0.0 <= memory_momentum < 1.0:
            raise ConfigError(f"memory_momentum must be in [0, 1), got {memory_momentum}")
        self.use_memory, self.memory, self.memory_momentum = use_memory, memory, memory_momentum
        self.stateful = use_memory  # the memory carries state from one target to the next
        self.memory_size = memory_size
        self.dsn_head = FCNHead(1024, 512, num_classes, dropout=0.05, bias=True)
        self.conv_3x3 = nn.Sequential(*conv_bn_relu(2048, 512, 3, bias=True))
        self.spatial_ocr_head = SpatialOCR(512, 256, 512, dropout=0.05)
        self.head = nn.Conv2d(512, num_classes, 1)
        self._memory: list[torch.Tensor] = []  # "official": per-frame contexts; "ema": one blended context

    def reset_state(self) -> None:
        """Clear the object-region memory (call at the first frame of every video)."""
        self._memory = []

    def frame_features(self, c3: torch.Tensor, c4: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.dsn_head(c3), self.conv_3x3(c4)

    def _memory_context(self, contexts: list[torch.Tensor]) -> torch.Tensor:
        if self.memory == "official":
            # The first step of a video appends to the memory itself; later steps append to a copy (the
            # official code rebinds a local list), so the stored entries stay those of the first step.
            entries = self._memory if not self._memory else list(self._memory)
            for ctx in contexts:  # FIFO as written: pop while longer than memory_size, then append
                while len(entries) > self.memory_size:
                    entries.pop(0)
                entries.append(ctx.detach())
            return torch.stack(entries).mean(0)
        current = torch.stack(contexts).mean(0)
        if self._memory:
            current = self.memory_momentum * self._memory[0] + (1.0 - self.memory_momentum) * current
        self._memory = [current.detach()]
        return current

    def _blend(self, feats: Sequence[tuple[torch.Tensor, ...]]) -> torch.Tensor:
        contexts = [gather_object_contexts(logits, f) for logits, f in feats]  # [B, 512, K, 1] each
        if self.use_memory and not self.training:
            context = self._memory_context(contexts)
        else:
            context = torch.stack(contexts).mean(0)
        return self.head(self.spatial_ocr_head(feats[-1][1], context))

    def _aux_logits(self, c3: torch.Tensor, per_frame: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return per_frame[0]


def build_tcb(*, num_classes: int = 124, blend: str = "ppm", use_memory: bool = False, memory: str = "ema",
              memory_momentum: float = 0.8, dilations: Sequence[int] = (3, 6, 9), deep_sup_scale: float = 0.4,
              depth: int = 101, pretrained: str | None = None, pretrained_backbone: str | None = None,
              encoder: str = "resnet", channels: int = 512, aux_channels: int = 512,
              drop_path_rate: float = 0.1, loss_reduction: str = "official",
              loss_group_size: int = TCB_LOSS_GROUP_SIZE) -> TCBBase:
    """Registry builder of ``tcb_ppm_r101``, ``tcb_ocr_r101``, ``tcb_ocr_mem_r101``.

    Args:
        num_classes: output classes.
        blend: ``"ppm"`` or ``"ocr"``.
        use_memory: OCR only: test-time object-region memory.
        memory: ``"ema"`` or ``"official"`` (see :class:`TCBOCR`).
        memory_momentum: ``"ema"`` momentum.
        dilations: support distances.
        deep_sup_scale: deep-supervision weight.
        depth: ResNet depth (101 as in the paper; 50 for quick experiments).
        pretrained: local checkpoint of the whole model (official ``module.``-prefixed layout accepted).
        pretrained_backbone: local CSAIL ImageNet ResNet weights for the encoder (ResNet encoder only).
        encoder: ``"resnet"`` (the paper: CSAIL deep-stem ResNet of ``depth``, output stride 8) or
            ``"mit_b0"`` .. ``"mit_b5"`` (a MiT encoder, stages at strides 4-32; PPM blend only). The PPM
            and the deep supervision then read the MiT's last and 3rd stages at their published widths.
        channels: PPM width (PPM blend; 512 in the paper, smaller for quick CPU runs).
        aux_channels: deep-supervision hidden width (PPM blend; 512 in the paper).
        drop_path_rate: MiT encoder only: stochastic depth.
        loss_reduction: ``"official"`` (the TCB code: NLL of bilinearly upsampled 1/8 log-probabilities, mean
            over the labelled pixels of each group of ``loss_group_size`` clips, groups averaged) or ``"valid"``
            (CE of upsampled logits, mean over the labelled pixels of the batch).
        loss_group_size: clips per official GPU (2: 8 clips on 4 GPUs); see :class:`PixelLoss`.
    """
    backbone = _build_encoder(encoder, depth=depth, drop_path_rate=drop_path_rate)
    common = {"num_classes": num_classes, "dilations": dilations, "deep_sup_scale": deep_sup_scale, "encoder": backbone,
              "loss": PixelLoss(loss_reduction, "vspw", loss_group_size)}
    if encoder != "resnet" and (blend != "ppm" or pretrained_backbone):
        raise ConfigError(f"TCB on encoder {encoder!r} supports blend='ppm' without pretrained_backbone only")
    if blend == "ppm":
        if use_memory:
            raise ConfigError("the TCB memory exists only for blend='ocr'")
        model: TCBBase = TCBPPM(**common, channels=channels, aux_channels=aux_channels)
    elif blend == "ocr":
        model = TCBOCR(**common, use_memory=use_memory, memory=memory, memory_momentum=memory_momentum)
    else:
        raise ConfigError(f"TCB blend must be 'ppm' or 'ocr', got {blend!r}")
    _load_pretrained(model, pretrained, pretrained_backbone)
    return model


def _build_encoder(name: str, *, depth: int, drop_path_rate: float) -> nn.Module:
    """``"resnet"`` -> CSAIL deep-stem ResNet (output stride 8); ``"mit_bN"`` -> MiT-BN."""
    if name == "resnet":
        return DeepStemResNet(depth=depth, output_stride=8)
    if name.startswith("mit_"):
        variant = name[len("mit_"):]
        if variant in MIT_VARIANTS:
            return build_mit(variant=variant, drop_path_rate=drop_path_rate)
    raise ConfigError(f"TCB encoder must be 'resnet' or 'mit_b0'..'mit_b5', got {name!r}")


def _load_pretrained(model: TCBBase, pretrained: str | None, pretrained_backbone: str | None) -> None:

    if pretrained_backbone:
        load_weights(model.encoder, pretrained_backbone, converter=convert_csail_resnet)
    if pretrained:
        load_weights(model, pretrained, converter=convert_tcb_checkpoint)
