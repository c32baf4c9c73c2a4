"""Full-size argmax of bilinearly upsampled logits without upsampling every class.

The reference path resizes low-resolution logits [1, K, h, w] to the frame size with
``F.interpolate(mode="bilinear", align_corners=False)`` (possibly in two steps: the model's output size,
then the frame size) and takes the argmax over K. Most of that work is wasted: a class can only win at an
output pixel if it is close to the best class somewhere in the few low-resolution pixels the pixel is
interpolated from.

:func:`upsample_argmax` gives the **same labels** as the reference, bit for bit:

1. Bilinear interpolation is a convex combination of the source pixels. If every source of an output pixel
   ``p`` (through all resize steps) lies in the low-resolution window ``N(q)``, the winner at ``p`` scores at
   least ``min over N(q)`` of the class that wins at ``q`` in low resolution, and class k at most its maximum
   over ``N(q)`` (up to float rounding, covered by ``eps``). Classes that fall below that floor everywhere
   can never be the argmax (:func:`candidate_classes`).
2. The remaining *candidate* classes (in ascending order) are upsampled with the very same
   ``F.interpolate`` calls, a chunk of classes at a time, keeping a running (value, index) maximum. Bilinear
   interpolation treats channels independently, so every upsampled value is bit-identical to the reference's
   (tested), ties go to the lowest class index as ``torch.argmax`` does (strict ``>`` across chunks), and
   eliminated classes are strictly below the winner.

Memory: ``chunk`` full-size maps instead of K; work: the candidate classes only (on a trained model about
the classes present in the frame; when every class is a candidate, e.g. random weights, the plain path).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

# rounding slack in units of the dtype's epsilon times the largest |logit|: each bilinear step sums 4
# products (a few ulp); 64 covers two steps with a wide margin
EPS_ULPS = 64
# softmax reference (argmax of probabilities, as mmseg's whole_inference): classes whose logits are within this of
# the winner could round to the same probability, so such pixels send the frame down the plain path
SOFTMAX_MARGIN = 1e-4


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


def _window_min(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Minimum over a (kh, kw) window centred on each pixel (separable, odd sizes), same shape as ``x``."""
    x = -x
    if kh > 1:
        x = F.max_pool2d(x, (kh, 1), stride=1, padding=(kh // 2, 0))
    if kw > 1:
        x = F.max_pool2d(x, (1, kw), stride=1, padding=(0, kw // 2))
    return -x


def _class_window_min(x: torch.Tensor, arg: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """``min over the (kh, kw) window N(q) of x[arg(q)]`` for each q: the window minimum of the class that
    wins at the centre. x [1, K, h, w], arg int64 [1, 1, h, w] -> [1, 1, h, w]."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), value=float("inf"))
    out = torch.full_like(arg, float("inf"), dtype=x.dtype)
    for dy in range(kh):
        for dx in range(kw):
            out = torch.minimum(out, padded[:, :, dy:dy + h, dx:dx + w].gather(1, arg))
    return out


def candidate_classes(logits: torch.Tensor, sizes: Sequence[tuple[int, int]], margin: float = 0.0) -> torch.Tensor:
    """Classes that can be the argmax at some output pixel after resizing ``logits`` [1, K, h, w] through
    ``sizes``; ascending int64 [M] (all K when there is no resize). ``logits`` must be finite.

    With ``N(q)`` a low-resolution window holding every source of an output pixel p and ``a(q)`` the
    low-resolution argmax at its centre q, the winner at p is at least ``floor(q) = min over N(q) of x_a(q)``
    (convex weights); class k can win at p only if ``x_k(s) >= floor(q) - eps`` for some s in N(q), i.e.
    ``x_k(s) >= (min of floor over the windows containing s) - eps``: one comparison pass over the K maps.
    ``margin`` widens ``eps``: the classes left out are then at least ``margin`` below the winner.
    """
    k, h, w = logits.shape[1:]
    steps = resize_steps((h, w), sizes)
    if not steps:
        return torch.arange(k, device=logits.device)
    kh = 2 * (_support_span(h, [s[0] for s in steps]) // 2) + 1
    kw = 2 * (_support_span(w, [s[1] for s in steps]) // 2) + 1
    x = logits.float()
    arg = x.argmax(dim=1, keepdim=True)  # [1, 1, h, w]
    eps = EPS_ULPS * torch.finfo(logits.dtype).eps * (float(x.abs().max()) + 1.0) + margin
    floor = _window_min(_class_window_min(x, arg, kh, kw), kh, kw) - eps  # [1, 1, h, w]
    possible = (x >= floor).flatten(2).any(dim=2)[0]  # [K]
    return torch.nonzero(possible).flatten()


def _resize_chain(x: torch.Tensor, steps: Sequence[tuple[int, int]]) -> torch.Tensor:
    for size in steps:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


def upsample_argmax(logits: torch.Tensor, sizes: Sequence[tuple[int, int]], *, softmax: bool = False,
                    chunk: int = 16) -> torch.Tensor:
    """Argmax over classes of ``logits`` resized bilinearly through ``sizes``, without all K full-size maps.

    Equal to ``reference_argmax(logits, sizes, softmax=softmax)`` (bit-identical labels; module docstring).
    With ``softmax`` the reference takes the argmax of the probabilities, where two nearly tied logits may
    round to one probability: the top two candidates are tracked, and a frame with any pixel whose runner-up
    is within :data:`SOFTMAX_MARGIN` of the winner (rare: exact or 1e-4 ties) takes the plain path.

    Args:
        logits: [1, K, h, w] (or [K, h, w]) low-resolution logits, any float dtype and device.
        sizes: the (H, W) resize steps of the reference, in order (a step equal to the current size is skipped,
            as :func:`vidseg.models.heads.common.resize` and the predictor do).
        softmax: the reference is the argmax of ``softmax`` of the resized logits (mmseg's non-direct path).
        chunk: classes upsampled at once (memory: ``chunk`` full-size maps).

    Returns:
        int64 [H, W] labels at the last size.
    """
    x = logits if logits.dim() == 4 else logits.unsqueeze(0)
    if x.shape[0] != 1:
        raise ValueError(f"upsample_argmax takes one image [1, K, h, w], got {tuple(logits.shape)}")
    steps = resize_steps(tuple(x.shape[-2:]), sizes)
    if not steps or not bool(torch.isfinite(x).all()):  # NaN/inf: no bound holds, take the plain path
        return reference_argmax(x, sizes, softmax=softmax)
    classes = candidate_classes(x, sizes, SOFTMAX_MARGIN if softmax else 0.0)
    out_h, out_w = steps[-1]
    if classes.numel() == x.shape[1]:  # nothing to save (e.g. random weights): the plain path is faster
        return reference_argmax(x, sizes, softmax=softmax)
    if classes.numel() == 1:
        return torch.full((out_h, out_w), int(classes[0]), dtype=torch.int64, device=x.device)
    best_val = best_idx = second = None
    for start in range(0, classes.numel(), max(1, int(chunk))):
        ids = classes[start:start + chunk]
        y = _resize_chain(x.index_select(1, ids).contiguous(), steps)[0]  # [c, H, W]
        arg = y.argmax(0)
        val = y.gather(0, arg.unsqueeze(0))[0]
        if softmax:
            runner = y.topk(2, dim=0).values[1] if y.shape[0] > 1 else torch.full_like(val, -math.inf)
            second = runner if second is None else torch.maximum(torch.maximum(second, runner),
                                                                 torch.minimum(best_val, val))
        label = ids[arg]
        if best_val is None:
            best_val, best_idx = val, label
        else:
            better = val > best_val  # strict: the lower class keeps a tie, as argmax does
            best_val = torch.where(better, val, best_val)
            best_idx = torch.where(better, label, best_idx)
    if softmax and bool((best_val - second <= SOFTMAX_MARGIN).any()):
        return reference_argmax(x, sizes, softmax=True)
    return best_idx


def reference_argmax(logits: torch.Tensor, sizes: Sequence[tuple[int, int]], *, softmax: bool = False
                     ) -> torch.Tensor:
    """The plain path: resize all K classes through ``sizes`` (skipping equal sizes), optionally softmax
    (float32, as :func:`vidseg.inference.tta.logits_to_probs`), then argmax -> int64 [H, W]."""
    x = logits if logits.dim() == 4 else logits.unsqueeze(0)
    scores = _resize_chain(x, resize_steps(tuple(x.shape[-2:]), sizes))[0]
    return (scores.float().softmax(0) if softmax else scores).argmax(0)
