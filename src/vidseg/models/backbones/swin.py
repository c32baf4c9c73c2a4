"""Swin Transformer T/S/B/L backbones for UperNet, built on ``transformers.SwinBackbone`` (no download).

The configuration is built in code from the Swin paper's variants; weights come from a local Hugging Face
folder or state-dict file (:func:`build_swin` ``pretrained``). The four stage outputs pass through one
LayerNorm each (as the official Swin segmentation backbone's ``norm0..3``), and windows are always
partitioned with padding (``always_partition``), as the segmentation code does for any input size.

Window size: 7 for T/S/B (ImageNet-1K 224 checkpoints) and **12 for Swin-L**: Swin-L is published only
with ImageNet-22K pre-training, and the UperNet Swin-L segmentation recipes (and the VSPW 2021 entries, STSC
included, which pre-train on ImageNet-22K) start from the 384x384 checkpoint whose window is 12. The window
only changes the relative-position tables; ``window_size=7`` selects the 224 checkpoint's layout.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from vidseg.errors import ConfigError
from vidseg.models.checkpoint import load_weights
from vidseg.models.heads.common import check_images

# variant -> (embed_dim, depths, num_heads, default window)
SWIN_VARIANTS: dict[str, tuple[int, tuple[int, ...], tuple[int, ...], int]] = {
    "t": (96, (2, 2, 6, 2), (3, 6, 12, 24), 7),
    "s": (96, (2, 2, 18, 2), (3, 6, 12, 24), 7),
    "b": (128, (2, 2, 18, 2), (4, 8, 16, 32), 7),
    "l": (192, (2, 2, 18, 2), (6, 12, 24, 48), 12),
}


class SwinEncoder(nn.Module):
    """Swin backbone returning four feature maps.

    Args:
        variant: ``"t"``, ``"s"``, ``"b"`` or ``"l"``.
        window_size: attention window (default per variant, see the module docstring).
        drop_path_rate: stochastic depth (0.3 as in the UperNet-Swin recipes).

    Attributes:
        out_channels: ``embed * (1, 2, 4, 8)``.
        out_strides: ``(4, 8, 16, 32)``.

    Shapes:
        [B, 3, H, W] -> ``[B, C_i, ceil(H / s_i), ceil(W / s_i)]`` for the four stages.
    """

    def __init__(self, *, variant: str = "t", window_size: int | None = None, drop_path_rate: float = 0.3) -> None:
        super().__init__()
        from transformers import SwinBackbone, SwinConfig

        if variant not in SWIN_VARIANTS:
            raise ConfigError(f"Swin variant must be one of {sorted(SWIN_VARIANTS)}, got {variant!r}")
        embed, depths, heads, window = SWIN_VARIANTS[variant]
        config = SwinConfig(embed_dim=embed, depths=list(depths), num_heads=list(heads),
                            window_size=window_size or window, drop_path_rate=drop_path_rate,
                            out_features=["stage1", "stage2", "stage3", "stage4"])
        self.variant = variant
        self.model = SwinBackbone(config)
        self.model.swin.layernorm = nn.Identity()  # the classifier's final norm: unused by the stage outputs
        self.out_channels = tuple(embed * 2 ** i for i in range(4))
        self.out_strides = (4, 8, 16, 32)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """[B, 3, H, W] normalised RGB -> four stage maps."""
        check_images(x, f"Swin-{self.variant.upper()}")
        return tuple(self.model(x).feature_maps)


def convert_hf_swin(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face ``SwinModel`` / ``SwinForImageClassification`` / ``SwinBackbone`` keys -> ``SwinEncoder``.

    Drops the classifier, pooler and final LayerNorm; adds the ``model.swin.`` prefix.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key[len("model."):] if key.startswith("model.") else key
        if k.startswith(("classifier.", "pooler.", "swin.pooler.", "layernorm.", "swin.layernorm.")):
            continue
        if k.startswith(("embeddings.", "encoder.")):
            k = "swin." + k
        out["model." + k] = value
    return out


def build_swin(*, variant: str = "t", window_size: int | None = None, drop_path_rate: float = 0.3,
               pretrained: str | None = None) -> SwinEncoder:
    """Registry builder of ``swin_{t,s,b,l}``.

    Args:
        variant: ``"t"``, ``"s"``, ``"b"``, ``"l"``.
        window_size: override the default window (7; 12 for L).
        drop_path_rate: stochastic depth rate.
        pretrained: local Hugging Face folder or weights file (HF Swin key layout).
    """
    model = SwinEncoder(variant=variant, window_size=window_size, drop_path_rate=drop_path_rate)
    if pretrained:
        load_weights(model, pretrained, converter=convert_hf_swin)
    return model
