"""CFFM's cross-frame attention: coarse-to-fine feature assembling (CFFA) + cross-frame feature mining (CFM).

A re-implementation of the official ``BasicLayer3d3`` / ``CffmTransformerBlock3d3`` / ``WindowAttention3d3``
(GuoleiSun/VSS-CFFM, a Focal-Transformer derivative), with the same parameter and buffer names so official
``decode_head.decoder_focal.*`` weights load unchanged. Written from the description in
``specs/models.md`` section 2.2; the behaviour that matters for equal outputs:

* Pre-norm on all frames (``norm1``), zero padding of the 1/8 maps to a multiple of the window (7); only the
  target (last frame) gets queries and is updated; the references pass through unchanged.
* Keys/values of every 7x7 query window of the target, all from the same ``qkv`` Linear (289 tokens):

  ====================  =====================================================================  ======
  source                how                                                                      tokens
  ====================  =====================================================================  ======
  target, own window    the 7x7 window                                                            49
  target, neighbours    4 cyclic rolls by (+-3, +-3) (wrapping around the map), minus the own      132
                        window (``valid_ind_rolled``)
  target, pooled        ``pool_layers.0`` = Linear(49->1) per window, 5x5 window grid around       25
  frame t-9             ``pool_layers_clips.0`` = Linear(49->1) per window, 7x7 grid, stride 1     49
  frame t-6             resize to 6/7 (bilinear), Linear(9->1) per 3x3 cell, 5x5 cells, stride 2    25
  frame t-3             resize to 6/7 (bilinear), Linear(4->1) per 2x2 cell, 3x3 cells, stride 3     9
  ====================  =====================================================================  ======

  Grid positions outside the map (zero padding of the unfolding) get -100 added to their logits.
* Relative position biases per key group (the own-window table is zero-initialised and, as in the official
  code, never re-initialised); the index tensors are persistent buffers (they are in the state dict).

Implementation (ours): instead of rolling the map four times and unfolding each pooled grid, all 289 keys of
every window are gathered in one indexing operation from a token table (target map, pooled target, the three
reference cell grids and one zero token standing for the unfold padding), with an index that depends only on
the map size (:meth:`CFFMAttention.key_index`); attention runs in ``F.scaled_dot_product_attention`` with the
position biases and the -100 padding mask as its additive mask. Same values and order as the official code
(checked against it to ~4e-6), about twice as fast on CPU, and traceable to ONNX (the index is a constant for
a fixed input size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidseg.models.fastpath import linear_add, tensor_version, use_fast_path
from vidseg.models.ops.cpu_kernels import window_attention

MASK_VALUE = -100.0


def relative_position_index(q_size: int, k_size: int) -> torch.Tensor:
    """Index into a ``(q_size + k_size - 1)**2`` bias table for each (query, key) pair of two square grids.

    Args:
        q_size: side of the query window.
        k_size: side of the key grid.

    Returns:
        [q_size**2, k_size**2] int64 with ``(dy + k_size - 1) * (q_size + k_size - 1) + (dx + k_size - 1)``,
        where ``(dy, dx)`` = query coordinate minus key coordinate (row-major flattening).
    """
    def grid(n: int) -> torch.Tensor:  # built on CPU even under a meta-device context (index constants)
        r = torch.arange(n, device="cpu")
        return torch.stack(torch.meshgrid(r, r, indexing="ij")).flatten(1)

    q, k = grid(q_size), grid(k_size)
    rel = q[:, :, None] - k[:, None, :] + (k_size - 1)  # [2, Nq, Nk], both >= 0
    return rel[0] * (q_size + k_size - 1) + rel[1]


def rolled_key_index(window: int, expand: int) -> torch.Tensor:
    """Positions kept from the 4 rolled windows (order: rolls (-e,-e), (-e,+e), (+e,-e), (+e,+e)).

    Each rolled window overlaps the own window in a (window - expand)^2 corner, which is dropped.

    Returns:
        [4 * (window**2 - (window - expand)**2)] int64 indices into the 4 concatenated flattened windows.
    """
    inner = window - expand
    # own-window corner of each rolled window: rows/cols [:inner] or [expand:]
    corners = [(range(inner), range(inner)),  # rolled by (-e, -e): own window sits in the top-left corner
               (range(inner), range(expand, window)),  # rolled by (-e, +e)
               (range(expand, window), range(inner)),  # rolled by (+e, -e)
               (range(expand, window), range(expand, window))]  # rolled by (+e, +e)
    keep = [d * window * window + i * window + j for d, (rows, cols) in enumerate(corners)
            for i in range(window) for j in range(window) if not (i in rows and j in cols)]
    return torch.tensor(keep, dtype=torch.long, device="cpu")


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] (H, W multiples of window) -> [B * nWh * nWw, window**2, C], windows row-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: [B * nW, window**2, C] -> [B, H, W, C]."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def pool_cells(x: torch.Tensor, cell: int, layer: nn.Linear) -> torch.Tensor:
    """Pool every ``cell x cell`` cell with a Linear over its cell**2 positions (row-major).

    Args:
        x: [B, H, W, C], H and W multiples of ``cell``.
        cell: cell side.
        layer: Linear(cell**2 -> 1).

    Returns:
        [B, H / cell, W / cell, C].
    """
    b, h, w, c = x.shape
    x = x.view(b, h // cell, cell, w // cell, cell, c).permute(0, 1, 3, 5, 2, 4)
    x = x.reshape(b, h // cell, w // cell, c, cell * cell)
    return layer(x).squeeze(-1)


def pool_cells_strided(x: torch.Tensor, cell: int, layer: nn.Linear) -> torch.Tensor:
    """:func:`pool_cells` without the cell-last copy: one multiply-add per cell position over strided views.

    Same arguments and result (up to float rounding: the cell**2 products are summed in another order).
    """
    b, h, w, c = x.shape
    cells = x.view(b, h // cell, cell, w // cell, cell, c)
    weight = layer.weight.view(cell, cell)
    out = (cells[:, :, 0, :, 0] * weight[0, 0]).add_(layer.bias)
    for k in range(1, cell * cell):
        out.addcmul_(cells[:, :, k // cell, :, k % cell], weight[k // cell, k % cell])
    return out


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (keys ``mlp.fc1``, ``mlp.fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def forward_add(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``residual + self(x)`` for inference (fast path): on CPU the GELU and the sum run inside the GEMMs.
        x, residual: [..., dim] (residual contiguous) -> [..., dim]."""
        hidden = linear_add(x, self.fc1.weight, self.fc1.bias, gelu=True)
        return linear_add(hidden, self.fc2.weight, self.fc2.bias, residual)


class CFFMAttention(nn.Module):
    """Window attention of the target over its own window, rolled neighbours and pooled multi-frame context.

    Args:
        dim: channels (256).
        num_heads: heads (8).
        window: query window side (7).
        expand: neighbour roll size (3).
        focal_window: pooled-target neighbourhood side (5).
        clip_strides: ``focal_l_clips`` (1, 2, 3): pooled cells per window side for frames t-9, t-6, t-3.
        clip_kernels: ``focal_kernel_clips`` (7, 5, 3): neighbourhood side on each reference's cell grid.
    """

    def __init__(self, *, dim: int = 256, num_heads: int = 8, window: int = 7, expand: int = 3,
                 focal_window: int = 5, clip_strides: tuple[int, ...] = (1, 2, 3),
                 clip_kernels: tuple[int, ...] = (7, 5, 3)) -> None:
        super().__init__()
        if dim % num_heads or any(k % 2 == 0 for k in clip_kernels) or len(clip_strides) != len(clip_kernels):
            raise ValueError("CFFMAttention: dim must divide by num_heads, clip kernels must be odd and "
                             "match clip_strides")
        self.dim, self.num_heads, self.window = dim, num_heads, window
        self.expand, self.focal_window = expand, focal_window
        self.clip_strides, self.clip_kernels = tuple(clip_strides), tuple(clip_kernels)
        self.scale = (dim // num_heads) ** -0.5
        area = window * window
        n_rolled = 4 * (area - (window - expand) ** 2)

        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window, window))
        self.relative_position_bias_table_to_neighbors = nn.Parameter(torch.zeros(1, num_heads, area, n_rolled))
        self.register_buffer("valid_ind_rolled", rolled_key_index(window, expand))
        self.relative_position_bias_table_to_windows = nn.ParameterList(
            [nn.Parameter(torch.zeros(num_heads, (window + focal_window - 1) ** 2))])
        self.register_buffer("relative_position_index_0", relative_position_index(window, focal_window))
        self.relative_position_bias_table_to_windows_clips = nn.ParameterList(
            [nn.Parameter(torch.zeros(num_heads, (window + k - 1) ** 2)) for k in self.clip_kernels])
        for i, k in enumerate(self.clip_kernels):
            self.register_buffer(f"relative_position_index_clips_{i}", relative_position_index(window, k))
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: trunc-normal(0.02) for every bias table except the own-window one (stays zero)."""
        nn.init.trunc_normal_(self.relative_position_bias_table_to_neighbors, std=0.02)
        for p in [*self.relative_position_bias_table_to_windows, *self.relative_position_bias_table_to_windows_clips]:
            nn.init.trunc_normal_(p, std=0.02)

    def _table_versions(self) -> tuple[int, ...]:
        """Version counters of the bias tables (-1 for inference tensors, which have none)."""
        return tuple(tensor_version(p) for p in (self.relative_position_bias_table,
                                                 self.relative_position_bias_table_to_neighbors,
                                                 *self.relative_position_bias_table_to_windows,
                                                 *self.relative_position_bias_table_to_windows_clips))

    def _cached(self, kind: str, key: tuple, make):
        """Shape-only index tensors and, at inference, the combined bias [nW, heads, 49, N] are kept for the
        last seen map size (and bias-table versions: any in-place update of a table invalidates it). With
        gradients enabled the bias is always rebuilt so it stays in the autograd graph."""
        if kind == "bias" and torch.is_grad_enabled():
            return make()
        cache = self.__dict__.setdefault("_inference_cache", {})
        if cache.get(kind, (None,))[0] != key:
            cache[kind] = (key, make())
        return cache[kind][1]

    @property
    def keys_per_window(self) -> int:
        """Number of key tokens per query window (289 with the defaults)."""
        area = self.window ** 2
        return (area + int(self.valid_ind_rolled.numel()) + self.focal_window ** 2
                + sum(k * k for k in self.clip_kernels))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[N, L, C] -> [N, heads, L, C / heads]."""
        n, length, c = x.shape
        return x.view(n, length, self.num_heads, c // self.num_heads).transpose(1, 2)

    def position_bias(self) -> torch.Tensor:
        """Relative position biases of all key groups: [heads, window**2, keys_per_window]."""
        area = self.window ** 2
        own = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        parts = [own.view(area, area, -1).permute(2, 0, 1), self.relative_position_bias_table_to_neighbors[0]]
        tables = [*self.relative_position_bias_table_to_windows, *self.relative_position_bias_table_to_windows_clips]
        names = ["relative_position_index_0"] + [f"relative_position_index_clips_{i}"
                                                 for i in range(len(self.clip_kernels))]
        for table, name in zip(tables, names):
            index = getattr(self, name)
            parts.append(table[:, index.reshape(-1)].view(-1, area, index.shape[1]))
        return torch.cat(parts, dim=-1)

    def key_index(self, n_h: int, n_w: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Where every key of every query window comes from, for an ``n_h x n_w`` window grid.

        Keys are gathered from one token table: ``[target map (H*W) | pooled target (nW) | t-9 cells |
        t-6 cells | t-3 cells | one zero token]`` (H = 7 n_h, W = 7 n_w; maps flattened row-major).

        Returns:
            index [nW, N] int64 rows into the table (N = 289); mask [nW, N] float, -100 where the pooled
            neighbourhood falls outside its grid (those keys point at the zero token, as ``nn.Unfold`` pads
            with zeros), else 0.
        """
        win, e = self.window, self.expand
        h, w = n_h * win, n_w * win
        wy, wx = torch.meshgrid(torch.arange(n_h), torch.arange(n_w), indexing="ij")
        wy, wx = wy.reshape(-1, 1), wx.reshape(-1, 1)  # [nW, 1]
        i, j = torch.arange(win).repeat_interleave(win), torch.arange(win).repeat(win)  # [49] row-major
        own_y, own_x = win * wy + i, win * wx + j  # [nW, 49]
        rolled = [((own_y - sy) % h) * w + (own_x - sx) % w for sy, sx in ((-e, -e), (-e, e), (e, -e), (e, e))]
        target_idx = torch.cat([own_y * w + own_x, torch.cat(rolled, dim=1)[:, self.valid_ind_rolled.cpu()]], 1)
        parts, masks = [target_idx], [torch.zeros(target_idx.shape, dtype=torch.bool)]
        offset = h * w
        grids = [(n_h, n_w, self.focal_window, 1)]
        grids += [(s * n_h, s * n_w, k, s) for s, k in zip(self.clip_strides, self.clip_kernels)]
        sizes = [gh * gw for gh, gw, _, _ in grids]
        zero = offset + sum(sizes)
        for (gh, gw, kernel, stride), size in zip(grids, sizes):
            a = torch.arange(kernel).repeat_interleave(kernel)
            b = torch.arange(kernel).repeat(kernel)
            gy, gx = stride * wy - kernel // 2 + a, stride * wx - kernel // 2 + b  # [nW, K*K], unfold order
            outside = (gy < 0) | (gy >= gh) | (gx < 0) | (gx >= gw)
            parts.append(torch.where(outside, torch.full_like(gy, zero), offset + gy * gw + gx))
            masks.append(outside)
            offset += size
        outside = torch.cat(masks, dim=1)
        mask = torch.where(outside, torch.tensor(MASK_VALUE), torch.tensor(0.0))
        return torch.cat(parts, dim=1).to(device), mask.to(device)

    def token_table(self, target: torch.Tensor, pooled_target: torch.Tensor,
                    pooled_refs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries of every query window of the target, and the table its keys/values are gathered from.

        Args:
            target: normed, padded target map [B, H, W, C] (H, W multiples of the window).
            pooled_target: [B, H / window, W / window, C] (one token per window).
            pooled_refs: per reference frame (t-9, t-6, t-3) its cell grid [B, s * H / window, s * W / window, C]
                with s = ``clip_strides``.

        Returns:
            q [B*nW, heads, window**2, hd] (not scaled); table [B * tokens, 2C] (keys in the first C columns,
            values in the last C); rows [B*nW, N] int64: the table row of each key of each window (N = 289,
            in the order own window, rolled neighbours, pooled target, t-9, t-6, t-3); mask [nW, N] (0, or
            -100 at pooled positions outside their grid).
        """
        b, h, w, c = target.shape
        win = self.window
        qkv = linear_add(target, self.qkv.weight, self.qkv.bias) if use_fast_path(self) else self.qkv(target)
        q_win = self._heads(window_partition(qkv[..., :c], win))
        sources = [qkv[..., c:].reshape(b, h * w, 2 * c)]
        sources += [self.qkv(g)[..., c:].reshape(b, -1, 2 * c) for g in [pooled_target, *pooled_refs]]
        sources.append(qkv.new_zeros(b, 1, 2 * c))
        table = torch.cat(sources, dim=1)  # [B, tokens, 2C]
        index, mask = self._cached("index", (h // win, w // win, target.device),
                                   lambda: self.key_index(h // win, w // win, target.device))
        rows = index
        if b > 1:  # rows of the flattened [B * tokens, 2C] table
            rows = (index[None] + table.shape[1] * torch.arange(b, device=index.device)[:, None, None])
            rows = rows.reshape(-1, index.shape[1])
        return q_win, table.reshape(-1, 2 * c), rows, mask

    def assemble(self, target: torch.Tensor, pooled_target: torch.Tensor,
                 pooled_refs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries and the assembled keys/values of every query window of the target (arguments as in
        :meth:`token_table`).

        Returns:
            q [B*nW, heads, window**2, hd] (not scaled); k, v [B*nW, heads, N, hd] (views) with N = keys per
            window (289), in the order own window, rolled neighbours, pooled target, t-9, t-6, t-3; mask [nW, N]
            (0, or -100 at pooled positions outside their grid).
        """
        q_win, table, rows, mask = self.token_table(target, pooled_target, pooled_refs)
        k, v = self._gather(table, rows)
        return q_win, k, v, mask

    def _gather(self, table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Keys and values [2, B*nW, heads, N, hd] (views): one gather of whole 2C-wide table rows."""
        kv = table.index_select(0, rows.reshape(-1))
        return kv.view(*rows.shape, 2, self.num_heads, -1).permute(2, 0, 3, 1, 4)

    def forward(self, target: torch.Tensor, pooled_target: torch.Tensor,
                pooled_refs: list[torch.Tensor]) -> torch.Tensor:
        """Attend from every window of the target (arguments as in :meth:`token_table`).

        On the inference fast path, vidseg's CPU kernel gathers each window's keys and values itself
        (:func:`vidseg.models.ops.cpu_kernels.window_attention`) where it runs; otherwise the gathered keys and
        values go through ``F.scaled_dot_product_attention`` (the official computation in one kernel).

        Returns:
            [B * nW, window**2, C] attention outputs per window (after ``proj``).
        """
        c = target.shape[-1]
        fast = use_fast_path(self)
        q_win, table, rows, mask = self.token_table(target, pooled_target, pooled_refs)
        bias = self._cached("bias", (mask.shape, mask.device, q_win.dtype, self._table_versions()),
                            lambda: self.position_bias().to(q_win.dtype).unsqueeze(0) + mask[:, None, None, :])
        out = window_attention(q_win, table, rows, bias, self.scale) if fast else None
        if out is None:
            k, v = self._gather(table, rows)
            if rows.shape[0] > bias.shape[0]:  # batch > 1: the same bias for every image
                bias = bias.repeat(rows.shape[0] // bias.shape[0], 1, 1, 1)
            # softmax(scale * q k^T + bias) v
            out = F.scaled_dot_product_attention(q_win, k, v, attn_mask=bias, scale=self.scale)
            out = out.transpose(1, 2).reshape(rows.shape[0], -1, c)  # [B*nW, 49, C]
        return linear_add(out, self.proj.weight, self.proj.bias) if fast else self.proj(out)


class CFFMBlock(nn.Module):
    """One CFM block (official ``CffmTransformerBlock3d3``): pre-norm cross-frame attention + MLP on the target.

    Args:
        dim, num_heads, window, expand, focal_window, clip_strides, clip_kernels: see :class:`CFFMAttention`.
        mlp_ratio: MLP hidden size / dim.
    """

    def __init__(self, *, dim: int = 256, num_heads: int = 8, window: int = 7, expand: int = 3,
                 focal_window: int = 5, clip_strides: tuple[int, ...] = (1, 2, 3),
                 clip_kernels: tuple[int, ...] = (7, 5, 3), mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window = window
        self.clip_strides = tuple(clip_strides)
        # fc pooling, initialised to averaging (learnable)
        self.pool_layers = nn.ModuleList([nn.Linear(window * window, 1)])
        self.pool_layers_clips = nn.ModuleList([nn.Linear((window // s) ** 2, 1) for s in self.clip_strides])
        for layer in [*self.pool_layers, *self.pool_layers_clips]:
            nn.init.constant_(layer.weight, 1.0 / layer.in_features)
            nn.init.zeros_(layer.bias)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CFFMAttention(dim=dim, num_heads=num_heads, window=window, expand=expand,
                                  focal_window=focal_window, clip_strides=clip_strides, clip_kernels=clip_kernels)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _pool_reference(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Cell grid of reference ``index``: [B, H, W, C] -> [B, s * H / win, s * W / win, C]."""
        stride = self.clip_strides[index]
        cell = self.window // stride
        if cell * stride != self.window:  # t-6, t-3: bilinear resize so that cells tile the window grid
            size = (x.shape[1] // self.window * stride * cell, x.shape[2] // self.window * stride * cell)
            x = F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear",
                              align_corners=False).permute(0, 2, 3, 1)
        pool = pool_cells_strided if use_fast_path(self) else pool_cells
        return pool(x, cell, self.pool_layers_clips[index])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Update the target (last frame).

        Args:
            x: [B, D, H, W, C] with D = 1 + number of references (references first, target last).

        Returns:
            [B, D, H, W, C]; frames 0..D-2 unchanged.
        """
        return torch.cat([x[:, :-1], self.update_target(x[:, :-1], x[:, -1]).unsqueeze(1)], dim=1)

    def update_target(self, refs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The block's new target: refs [B, D-1, H, W, C] (t-9, t-6, t-3), target [B, H, W, C] -> [B, H, W, C]."""
        if refs.shape[1] != len(self.clip_strides):
            raise ValueError(f"CFFM block expects {len(self.clip_strides) + 1} frames, got {refs.shape[1] + 1}")
        h, w = target.shape[1:3]
        win = self.window
        pad_b, pad_r = (win - h % win) % win, (win - w % win) % win
        hp, wp = h + pad_b, w + pad_r

        def norm_pad(x: torch.Tensor) -> torch.Tensor:
            x = self.norm1(x)
            return F.pad(x, (0, 0, 0, pad_r, 0, pad_b)) if pad_b or pad_r else x

        fast = use_fast_path(self)
        if fast:  # refs and target normed apart (no 4-frame concat), strided cell pooling
            normed_refs, normed_target = norm_pad(refs), norm_pad(target)
            pooled_target = pool_cells_strided(normed_target, win, self.pool_layers[0])
        else:
            normed = norm_pad(torch.cat([refs, target.unsqueeze(1)], dim=1))
            normed_refs, normed_target = normed[:, :-1], normed[:, -1]
            pooled_target = pool_cells(normed_target, win, self.pool_layers[0])
        pooled_refs = [self._pool_reference(normed_refs[:, i], i) for i in range(refs.shape[1])]
        out = self.attn(normed_target, pooled_target, pooled_refs)
        out = window_reverse(out, win, hp, wp)[:, :h, :w]
        t = target + out
        if fast:
            return self.mlp.forward_add(self.norm2(t), t)
        return t + self.mlp(self.norm2(t))


class CFFMLayer(nn.Module):
    """``decoder_focal``: a stack of :class:`CFFMBlock` (``blocks.{i}``).

    Args:
        depth: number of blocks (B0 1, B1 2, B2 2, B5 4).
        **block_kwargs: passed to :class:`CFFMBlock`.
    """

    def __init__(self, *, depth: int, **block_kwargs) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([CFFMBlock(**block_kwargs) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, D, C, H, W] (target last) -> [B, D, C, H, W], only the target updated."""
        return torch.cat([x[:, :-1], self.refine_target(x).unsqueeze(1)], dim=1)

    def refine_target(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, D, C, H, W] (target last) -> the refined target [B, C, H, W] (references stay as they are)."""
        y = x.permute(0, 1, 3, 4, 2)
        refs, target = y[:, :-1], y[:, -1]
        for block in self.blocks:
            target = block.update_target(refs, target)
        return target.permute(0, 3, 1, 2)
