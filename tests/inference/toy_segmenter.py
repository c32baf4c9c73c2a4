"""A small VideoSegmenter for tests: conv backbone, slot-weighted blending decoder, optional state."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ToySegmenter(nn.Module):
    """Implements the VideoSegmenter protocol.

    encode_frame -> (feature map [B, C, H/2, W/2], per-image colour mean [B, 3]); decode_clip blends the
    maps with softmax weights that depend on the slot in the clip (so order and membership matter), adds a
    term from the target's colour mean, classifies and upsamples. ``stateful`` adds an EMA memory of the
    blended map's mean that biases the logits (like TCB's memory), reset by ``reset_state``.
    """

    def __init__(self, num_classes: int = 5, support_offsets: Sequence[int] = (-9, -6, -3), width: int = 8,
                 offline_support_offsets: Sequence[int] | None = None, cffm_like: bool = False,
                 stateful: bool = False, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.num_classes = num_classes
        self.support_offsets = tuple(support_offsets)
        self.offline_support_offsets = tuple(offline_support_offsets or ())
        self.test_rule = "cffm" if cffm_like else ("tcb" if offline_support_offsets is not None else "offsets")
        self.stateful = stateful
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.Conv2d(width, width, 3, 1, 1))
        self.mix = nn.Parameter(torch.randn(len(self.support_offsets) + 1))
        self.colour = nn.Linear(3, width)
        self.head = nn.Conv2d(width, num_classes, 1)
        with torch.no_grad():  # non-trivial BN statistics
            self.backbone[1].running_mean.uniform_(-0.5, 0.5)
            self.backbone[1].running_var.uniform_(0.5, 2.0)
        self.memory: torch.Tensor | None = None
        self.resets = 0

    def encode_frame(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.backbone(image), image.mean(dim=(2, 3))

    def decode_clip(self, features, image_size):
        low = self.decode_clip_lowres(features, image_size)
        return F.interpolate(low, size=tuple(image_size), mode="bilinear", align_corners=False)

    def decode_clip_lowres(self, features, image_size):
        n = len(features)
        w = self.mix[-n:].softmax(0)
        blended = sum(w[i] * features[i][0] for i in range(n))
        blended = blended + self.colour(features[-1][1])[:, :, None, None]
        if self.stateful:
            current = blended.mean(dim=(0, 2, 3)).detach()
            self.memory = current if self.memory is None else 0.5 * self.memory + 0.5 * current
            blended = blended + self.memory[None, :, None, None]
        return self.head(blended)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        maps, means = self.encode_frame(frames.flatten(0, 1))
        maps = maps.unflatten(0, (b, t))
        means = means.unflatten(0, (b, t))
        return self.decode_clip([(maps[:, i], means[:, i]) for i in range(t)], frames.shape[-2:])

    def losses(self, outputs, labels):
        return {"loss": F.cross_entropy(outputs, labels[:, -1], ignore_index=255)}

    def support_features(self, features):
        return features

    def reset_state(self) -> None:
        self.memory = None
        self.resets += 1
