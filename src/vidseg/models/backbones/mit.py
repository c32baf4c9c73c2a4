"""Mix Transformer (MiT-B0..B5), the SegFormer encoder, built on Hugging Face ``transformers``.

The layers are transformers' ``SegformerModel`` stages, constructed in code from a ``SegformerConfig`` (nothing
is downloaded). The official NVlabs code uses two LayerNorm epsilons: 1e-6 in the block norms (``norm1``,
``norm2``) and the stage norms (``norm1..4``), and PyTorch's default 1e-5 in the patch-embedding norms and the
spatial-reduction norms (``attn.norm``). transformers builds every LayerNorm with 1e-5, so after construction
we set ``eps`` on the block and stage norms to 1e-6 (``official_eps=True``, the default); with it the outputs
equal the official module's for the same weights. ``official_eps=False`` keeps transformers' 1e-5 everywhere.

Output: four feature maps at strides 4, 8, 16, 32 with ``out_channels`` channels (see :attr:`MiT.out_channels`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidseg.errors import ConfigError
from vidseg.models.fastpath import (
    cached_weights,
    conv2d_gelu,
    is_exact_gelu,
    linear_add,
    map_to_tokens,
    tokens_to_map,
    use_fast_path,
)
from vidseg.models.ops.cpu_kernels import attention_tokens, layer_norm, mix_ffn

# variant -> (embed dims, depths); all variants: heads 1,2,5,8; sr ratios 8,4,2,1; mlp ratio 4
MIT_VARIANTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "b0": ((32, 64, 160, 256), (2, 2, 2, 2)),
    "b1": ((64, 128, 320, 512), (2, 2, 2, 2)),
    "b2": ((64, 128, 320, 512), (3, 4, 6, 3)),
    "b3": ((64, 128, 320, 512), (3, 4, 18, 3)),
    "b4": ((64, 128, 320, 512), (3, 8, 27, 3)),
    "b5": ((64, 128, 320, 512), (3, 6, 40, 3)),
}
MIT_HEADS = (1, 2, 5, 8)
MIT_SR_RATIOS = (8, 4, 2, 1)
MIT_STRIDES = (4, 8, 16, 32)
OFFICIAL_BLOCK_EPS = 1e-6  # norm1/norm2 of every block and the stage norms
OFFICIAL_EMBED_EPS = 1e-5  # patch-embedding norms and spatial-reduction norms


def _segformer_config(variant: str, in_channels: int, drop_path_rate: float):
    from transformers import SegformerConfig

    dims, depths = MIT_VARIANTS[variant]
    return SegformerConfig(
        num_channels=in_channels, num_encoder_blocks=4, depths=list(depths), sr_ratios=list(MIT_SR_RATIOS),
        hidden_sizes=list(dims), patch_sizes=[7, 3, 3, 3], strides=[4, 2, 2, 2],
        num_attention_heads=list(MIT_HEADS), mlp_ratios=[4, 4, 4, 4], hidden_act="gelu",
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, drop_path_rate=drop_path_rate,
    )


def set_official_eps(stages: nn.ModuleList) -> None:
    """Set the official per-module LayerNorm eps on transformers' Segformer stages (in place)."""
    for stage in stages:
        stage.patch_embeddings.layer_norm.eps = OFFICIAL_EMBED_EPS
        stage.layer_norm.eps = OFFICIAL_BLOCK_EPS
        for block in stage.blocks:
            block.layernorm_before.eps = OFFICIAL_BLOCK_EPS
            block.layernorm_after.eps = OFFICIAL_BLOCK_EPS
            reduction = getattr(block.attention, "sequence_reduction", None)
            if reduction is not None:
                reduction.layer_norm.eps = OFFICIAL_EMBED_EPS


class MiT(nn.Module):
    """Mix Transformer encoder.

    Args:
        variant: ``"b0"`` .. ``"b5"``.
        in_channels: input image channels.
        drop_path_rate: stochastic depth, linearly increasing over all blocks from 0 (official 0.1).
        official_eps: use the official per-module LayerNorm eps (see module docstring).

    Attributes:
        out_channels: channels of the four outputs.
        out_strides: output strides (4, 8, 16, 32).
        stages: transformers ``SegformerStage`` modules (patch embedding, blocks, norm).
    """

    def __init__(self, *, variant: str = "b0", in_channels: int = 3, drop_path_rate: float = 0.1,
                 official_eps: bool = True) -> None:
        super().__init__()
        if variant not in MIT_VARIANTS:
            raise ConfigError(f"unknown MiT variant {variant!r}; expected one of {sorted(MIT_VARIANTS)}")
        from transformers import SegformerModel

        self.variant = variant
        self.in_channels = in_channels
        self.out_channels: tuple[int, ...] = MIT_VARIANTS[variant][0]
        self.out_strides: tuple[int, ...] = MIT_STRIDES
        model = SegformerModel(_segformer_config(variant, in_channels, drop_path_rate))
        self.stages = model.stages
        if official_eps:
            set_official_eps(self.stages)

    def output_shape(self) -> dict[str, tuple[int, int]]:
        """``{"c1".."c4": (channels, stride)}``."""
        return {f"c{i + 1}": (c, s) for i, (c, s) in enumerate(zip(self.out_channels, self.out_strides))}

    def check_input(self, image: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``image`` is [B, in_channels, H, W] with H, W >= 1."""
        if image.dim() != 4 or image.shape[1] != self.in_channels:
            raise ValueError(f"MiT-{self.variant.upper()} expects images [B, {self.in_channels}, H, W], "
                             f"got shape {tuple(image.shape)}")

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Encode an image batch.

        Args:
            image: [B, 3, H, W] normalised images.

        Returns:
            four maps [B, C_i, ceil(H/s_i), ceil(W/s_i)] for strides s_i = 4, 8, 16, 32 (the convolutions
            round up at every stage).
        """
        self.check_input(image)
        if use_fast_path(self):
            return self._forward_fast(image)
        feats = []
        x = image
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def _forward_fast(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Inference forward (eval, no autograd): the same layers with channels-last convolutions, so tokens
        [B, H*W, C] and feature maps share memory and no layout copy is made; keys and values come from one
        GEMM. On CPUs with AVX-512, attention, LayerNorm and the Mix-FFN run vidseg's C kernels
        (:mod:`vidseg.models.ops.cpu_kernels`); otherwise ``F.scaled_dot_product_attention``, ``nn.LayerNorm``
        and, on CPU, oneDNN GEMMs with bias and residual sum fused and the Mix-FFN's GELU inside its depthwise
        convolution. Outputs equal :meth:`forward`'s up to float rounding and are channels-last views
        [B, C, H, W] of [B, H, W, C] memory."""
        feats = []
        x = image.contiguous(memory_format=torch.channels_last)
        for stage in self.stages:
            x = fast_stage(stage, x)
            feats.append(x)
        return feats


def _weight_channels_last(conv: nn.Conv2d) -> torch.Tensor:
    """A cached channels-last copy of ``conv.weight`` (oneDNN then keeps channels-last output)."""
    return cached_weights(conv, "weight_cl", (conv.weight,),
                          lambda: conv.weight.contiguous(memory_format=torch.channels_last))


def conv_channels_last(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` with a cached channels-last copy of the weight (oneDNN then keeps channels-last output)."""
    return F.conv2d(x, _weight_channels_last(conv), conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _fast_attention(attention: nn.Module, x: torch.Tensor, height: int, width: int,
                    residual: torch.Tensor) -> torch.Tensor:
    """``residual`` + transformers' ``SegformerAttention`` (eval) on tokens x [B, N, C] -> [B, N, C]."""
    b, n, c = x.shape
    heads = attention.num_attention_heads
    q = linear_add(x, attention.q_proj.weight, attention.q_proj.bias).view(b, n, heads, -1).transpose(1, 2)
    kv_in = x
    if attention.sequence_reduction_ratio > 1:
        reduction = attention.sequence_reduction
        reduced = conv_channels_last(reduction.sequence_reduction, tokens_to_map(x, height, width))
        kv_in = layer_norm(map_to_tokens(reduced), reduction.layer_norm)
    k_proj, v_proj = attention.k_proj, attention.v_proj
    weight, bias = cached_weights(
        attention, "kv", (k_proj.weight, k_proj.bias, v_proj.weight, v_proj.bias),
        lambda: (torch.cat([k_proj.weight, v_proj.weight]), torch.cat([k_proj.bias, v_proj.bias])))
    kv = linear_add(kv_in, weight, bias).view(b, -1, 2, heads, c // heads).permute(2, 0, 3, 1, 4)
    out = attention_tokens(q, kv[0], kv[1], attention.scaling)
    return linear_add(out, attention.o_proj.weight, attention.o_proj.bias, residual)


def _fast_mix_ffn(mlp: nn.Module, x: torch.Tensor, height: int, width: int, residual: torch.Tensor) -> torch.Tensor:
    """``residual`` + transformers' ``SegformerMixMLP`` (eval) on tokens x [B, N, C]: with the erf GELU, vidseg's
    fused CPU kernel where it runs (:func:`vidseg.models.ops.cpu_kernels.mix_ffn`), else the layers with the
    depthwise conv channels-last and the GELU fused into it."""
    conv = mlp.dwconv.dwconv
    exact_gelu = is_exact_gelu(mlp.activation_fn)
    fused = mix_ffn(x, residual, height, width, mlp.fc1, conv, mlp.fc2) if exact_gelu else None
    if fused is not None:
        return fused
    hidden = tokens_to_map(linear_add(x, mlp.fc1.weight, mlp.fc1.bias), height, width)
    if exact_gelu:
        hidden = conv2d_gelu(hidden, conv, _weight_channels_last(conv))
    else:
        hidden = mlp.activation_fn(conv_channels_last(conv, hidden))
    return linear_add(map_to_tokens(hidden), mlp.fc2.weight, mlp.fc2.bias, residual)


def fast_stage(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One transformers ``SegformerStage`` in eval mode without layout copies.

    Args:
        stage: the stage (patch embedding, blocks, norm).
        x: [B, C_in, H, W], preferably channels-last.

    Returns:
        [B, C, h, w], a channels-last view of the stage's normed tokens.
    """
    embed = stage.patch_embeddings
    y = conv_channels_last(embed.proj, x)
    height, width = y.shape[-2:]
    tokens = layer_norm(map_to_tokens(y), embed.layer_norm)
    for block in stage.blocks:
        tokens = _fast_attention(block.attention, layer_norm(tokens, block.layernorm_before), height, width, tokens)
        tokens = _fast_mix_ffn(block.mlp, layer_norm(tokens, block.layernorm_after), height, width, tokens)
    return tokens_to_map(layer_norm(tokens, stage.layer_norm), height, width)


def build_mit(*, variant: str = "b0", in_channels: int = 3, drop_path_rate: float = 0.1,
              official_eps: bool = True) -> MiT:
    """Registry builder of ``mit_b0`` .. ``mit_b5`` (no classification head)."""
    return MiT(variant=variant, in_channels=in_channels, drop_path_rate=drop_path_rate, official_eps=official_eps)
