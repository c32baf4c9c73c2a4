"""Full-size argmax of bilinearly upsampled logits without upsampling every class.

The reference path resizes low-resolution logits [1, K, h, w] to the frame size with
``F.interpolate(mode="bilinear", align_corners=False)`` (possibly in two steps: the model's output size,
then the frame size) and takes the argmax over K. Most of that work is wasted: a class can only win at an
output pixel if it is close to the best class somewhere in the few low-resolution pixels the pixel is
interpolated from.

:func:`upsample_argmax` gives the **same labels** as the reference, bit for bit:

1. Bilinear interpolation is a convex combination of the source pixels, so at an output pixel ``p`` whose
   sources (through all resize steps) lie in a low-resolution window ``N(p)``: ``interp_k(p) <= max_N x_k``
   and ``max_j interp_j(p) >= max_j min_N x_j`` (up to float rounding, bounded by ``eps`` below). A class whose
   window maximum is below the best window minimum minus ``eps`` everywhere can never be the argmax.
2. The remaining *candidate* classes (in ascending order) are upsampled with the very same
   ``F.interpolate`` calls, a chunk of classes at a time, keeping a running (value, index) maximum. Bilinear
   interpolation treats channels independently, so every upsampled value is bit-identical to the reference's
   (tested), ties go to the lowest class index as ``torch.argmax`` does (strict ``>`` across chunks), and
   eliminated classes are strictly below the winner.

Memory: ``chunk`` full-size maps instead of K; work: the candidate classes only (on a trained model the few
classes present near each pixel; on random weights possibly all K, then it costs what the reference does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

# rounding slack in units of the dtype's epsilon times the largest |logit|: each bilinear step sums 4
# products (a few ulp); 64 covers two steps with a wide margin
EPS_ULPS = 64


def resize_steps(in_size: tuple[int, int], sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The resize steps the reference performs: each size in ``sizes`` that differs from the current one."""
    steps, current = [], tuple(int(s) for s in in_size)
    for size in sizes:
        size = (int(size[0]), int(size[1]))
        if size != current:
            steps.append(size)
            current = size
    return steps


def _support_span(in_len: int, steps: Sequence[int]) -> int:
    """How many consecutive low-resolution rows (or columns) one output row can draw on, through ``steps``."""
    lengths = [in_len, *steps]
    span = 1
    for i in range(len(steps), 0, -1):  # from the output back to the input
        scale = lengths[i - 1] / lengths[i]
        span = min(math.ceil((span - 1) * scale) + 2, lengths[i - 1])
    return span


def _window_pool(x: torch.Tensor, kh: int, kw: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class max and min over a (kh, kw) window centred on each pixel (separable), [1, K, h, w] each."""
    def pool(t: torch.Tensor) -> torch.Tensor:
        t = F.max_pool2d(t, (kh, 1), stride=1, padding=(kh // 2, 0)) if kh > 1 else t
        return F.max_pool2d(t, (1, kw), stride=1, padding=(0, kw // 2)) if kw > 1 else t
    return pool(x), -pool(-x)


def candidate_classes(logits: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
    """Classes that can be the argmax at some output pixel after resizing ``logits`` [1, K, h, w] through
    ``sizes``; ascending int64 [M] (all K when there is no resize). ``logits`` must be finite."""
    k, h, w = logits.shape[1:]
    steps = resize_steps((h, w), sizes)
    if not steps:
        return torch.arange(k, device=logits.device)
    span_h = _support_span(h, [s[0] for s in steps])
    span_w = _support_span(w, [s[1] for s in steps])
    x = logits.float()
    eps = EPS_ULPS * torch.finfo(logits.dtype).eps * (float(x.abs().max()) + 1.0)
    high, low = _window_pool(x, 2 * (span_h // 2) + 1, 2 * (span_w // 2) + 1)
    floor = low.max(dim=1, keepdim=True).values - eps  # [1, 1, h, w]
    possible = (high >= floor).flatten(2).any(dim=2)[0]  # [K]
    return torch.nonzero(possible).flatten()


def _resize_chain(x: torch.Tensor, steps: Sequence[tuple[int, int]]) -> torch.Tensor:
    for size in steps:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


def upsample_argmax(logits: torch.Tensor, sizes: Sequence[tuple[int, int]], *, chunk: int = 16) -> torch.Tensor:
    """Argmax over classes of ``logits`` resized bilinearly through ``sizes``, without all K full-size maps.

    Equal to ``reference_argmax(logits, sizes)`` (bit-identical labels; see the module docstring).

    Args:
        logits: [1, K, h, w] (or [K, h, w]) low-resolution logits, any float dtype and device.
        sizes: the (H, W) resize steps of the reference, in order (a step equal to the current size is skipped,
            as :func:`vidseg.models.heads.common.resize` and the predictor do).
        chunk: classes upsampled at once (memory: ``chunk`` full-size maps).

    Returns:
        int64 [H, W] labels at the last size.
    """
    x = logits if logits.dim() == 4 else logits.unsqueeze(0)
    if x.shape[0] != 1:
        raise ValueError(f"upsample_argmax takes one image [1, K, h, w], got {tuple(logits.shape)}")
    steps = resize_steps(tuple(x.shape[-2:]), sizes)
    if not steps or not bool(torch.isfinite(x).all()):  # NaN/inf: no bound holds, take the plain path
        return reference_argmax(x, sizes)
    classes = candidate_classes(x, sizes)
    out_h, out_w = steps[-1]
    if classes.numel() == x.shape[1]:  # nothing to save (e.g. random weights): the plain path is faster
        return reference_argmax(x, sizes)
    if classes.numel() == 1:
        return torch.full((out_h, out_w), int(classes[0]), dtype=torch.int64, device=x.device)
    best_val = best_idx = None
    for start in range(0, classes.numel(), max(1, int(chunk))):
        ids = classes[start:start + chunk]
        y = _resize_chain(x.index_select(1, ids).contiguous(), steps)[0]  # [c, H, W]
        arg = y.argmax(0)
        val = y.gather(0, arg.unsqueeze(0))[0]
        label = ids[arg]
        if best_val is None:
            best_val, best_idx = val, label
        else:
            better = val > best_val  # strict: the lower class keeps a tie, as argmax does
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, label, best_idx)
    return best_idx


def reference_argmax(logits: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
    """The plain path: resize all K classes through ``sizes`` (skipping equal sizes), then argmax -> [H, W]."""
    x = logits if logits.dim() == 4 else logits.unsqueeze(0)
    return _resize_chain(x, resize_steps(tuple(x.shape[-2:]), sizes))[0].argmax(0)
