"""Full-size argmax of bilinearly upsampled logits without materialising full-size logits.

The reference path resizes low-resolution logits [1, K, h, w] to the frame size with
``F.interpolate(mode="bilinear", align_corners=False)`` (possibly in two steps: the model's output size, then
the frame size), optionally takes the softmax, and takes the argmax over K (ties to the lowest index). That
writes and reads K full-size maps (124 x 480 x 853 floats: 200 MB) per frame, and ``argmax`` over the class
dimension is one of torch's slowest reductions. :func:`upsample_argmax` gives the **same labels**, bit for bit:

1. **Candidate classes per row band.** Through all resize steps an output pixel reads a small low-resolution
   rectangle (2 x 2 for one step, up to 3 x 3 for two). Bilinear weights are convex, so there class k scores
   within ``[min_k, max_k]`` over the rectangle (up to float rounding, covered by ``tol``) and the winner at
   least ``max_k min_k``; classes below that can be dropped. A band of output rows keeps the classes that can
   win somewhere in it (on a trained model a handful), and a band with one class is labelled without computing
   anything. When most classes win somewhere at low resolution (random weights) the bound is skipped.
2. **Row bands in cache.** For each band (about 2M values) the few low-resolution rows it reads are resized
   (the columns by one 1-D linear interpolation per step, the rows by lerps with all steps composed into one
   linear map; plain float32) and reduced: the classes within ``2 tol`` of the maximum are counted and their indices summed by
   one small matmul, so a count of one names the winner (no index reduction). These values are within ``tol``
   of the reference's.
3. **Near ties** (count above one; softmax mode: within ``SOFTMAX_MARGIN``; a few pixels per frame) are
   recomputed **exactly as ATen computes them**: the source indices and weights of ``upsample_bilinear2d``
   (``area_pixel_compute_source_index``, clamp, ``1 - lambda``) and its arithmetic (on x86-64 builds with
   FMA: ``fma(t0, w0, t1 * w1)`` along x, then along y), emulated in float64 with an exact correction of double
   rounding, for every class; then the reference's ``softmax`` (whose per-pixel arithmetic does not depend on
   the pixel's position; tested) and ``argmax``. Which arithmetic the installed torch uses is found once per
   size chain and thread count by comparing the emulation with ``F.interpolate`` on a random probe
   (:func:`_verified_mode`); when no known arithmetic matches, the plain path runs.

Only ATen's generic NCHW float32 CPU kernel is emulated. Channels-last logits, fewer than 4 classes, outputs
with H + W <= 128 (ATen then takes its channels-last kernel, whose arithmetic differs), other dtypes and
non-finite values take the plain path; other devices prune whole-frame candidates and resize the rest a
chunk of classes at a time. Probabilities for TTA, ensembling and pseudo-labels never come here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# rounding slack in units of float32 epsilon times the largest |logit|: each bilinear step rounds a few times
# (a few ulp); 64 covers two steps with a wide margin
EPS_ULPS = 64
# softmax reference (argmax of probabilities, as mmseg's whole_inference): classes whose logits are within this of
# the winner could round to the same probability, so such pixels are decided on the exact probabilities
SOFTMAX_MARGIN = 1e-5
# smallest normal float32: the exact emulation's rounding fix assumes normal results
_TINY = 2.0 ** -125


def resize_steps(in_size: tuple[int, int], sizes: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The resize steps the reference performs: each size in ``sizes`` that differs from the current one."""
    steps, current = [], tuple(int(s) for s in in_size)
    for size in sizes:
        size = (int(size[0]), int(size[1]))
        if size != current:
            steps.append(size)
            current = size
    return steps


# --------------------------------------------------------------------------------------------------------------
# ATen's bilinear taps and arithmetic, emulated exactly


def _round32(x: torch.Tensor) -> torch.Tensor:
    """float64 -> nearest float32 (kept as float64)."""
    return x.float().double()


def _fma32(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """float32 ``fma(a, b, c)`` (one rounding), for float32 values held in float64 tensors.

    ``a * b`` is exact in float64; ``a * b + c`` is rounded once in float64 and once more to float32. The second
    rounding can only be wrong when the float64 sum lands exactly on a float32 midpoint while the exact sum does
    not; the exact error (TwoSum) then says which way to go.
    """
    p = a * b
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)
    midpoint = (s.view(torch.int64) & ((1 << 29) - 1)) == (1 << 28)
    fix = midpoint & (err != 0)
    if bool(fix.any()):
        s = torch.where(fix, torch.nextafter(s, torch.where(err > 0, math.inf, -math.inf)), s)
    return _round32(s)


@dataclass(frozen=True)
class Taps:
    """One resize step along one axis: output index o reads ``i0[o]`` with weight ``w0[o]`` and ``i1[o]`` with
    ``w1[o]`` (int64 / float64 holding float32 values, each [out_len])."""

    i0: torch.Tensor
    i1: torch.Tensor
    w0: torch.Tensor
    w1: torch.Tensor


def axis_taps(in_len: int, out_len: int, mode: str = "fma") -> Taps:
    """ATen's ``compute_source_index_and_lambda`` for bilinear, ``align_corners=False``, no explicit scale.

    ``scale = float(in) / out``; ``src = scale * (o + 0.5) - 0.5`` (one fused rounding in ``mode="fma"``,
    two in ``"plain"``), clamped at 0; ``i0 = min(floor(src), in - 1)``, ``i1 = i0 + (i0 < in - 1)``,
    ``w1 = clamp(src - i0, 0, 1)``, ``w0 = 1 - w1`` (float32). Equal sizes: the identity (``w0 = 1``).
    """
    o = torch.arange(out_len, dtype=torch.float64)
    if in_len == out_len:
        idx = o.long()
        return Taps(idx, idx, torch.ones_like(o), torch.zeros_like(o))
    scale = float(torch.tensor(float(in_len), dtype=torch.float32) / out_len)
    half = torch.tensor(0.5, dtype=torch.float64)
    if mode == "fma":
        src = _fma32(torch.full_like(o, scale), o + 0.5, -half.expand_as(o))
    else:
        src = _round32(_round32(scale * (o + 0.5)) - 0.5)
    src = src.clamp(min=0.0)
    i0 = src.floor().long().clamp(max=in_len - 1)
    w1 = _round32(src - i0.double()).clamp(0.0, 1.0)
    return Taps(i0, i0 + (i0 < in_len - 1).long(), _round32(1.0 - w1), w1)


def _lerp(a: torch.Tensor, b: torch.Tensor, w0: torch.Tensor, w1: torch.Tensor, mode: str) -> torch.Tensor:
    """``a * w0 + b * w1`` with the reference's roundings (float64 holding float32) or, for ``mode="approx"``,
    in plain float32."""
    if mode == "approx":
        return a * w0 + b * w1
    if mode == "fma":
        return _fma32(a, w0, _round32(b * w1))
    return _round32(_round32(a * w0) + _round32(b * w1))


@dataclass(frozen=True)
class Chain:
    """The resize steps of one reference call: per step the row and column taps, and the low-resolution size."""

    in_size: tuple[int, int]
    rows: tuple[Taps, ...]
    cols: tuple[Taps, ...]

    @staticmethod
    def build(in_size: tuple[int, int], steps: Sequence[tuple[int, int]], mode: str) -> Chain:
        rows, cols, (h, w) = [], [], in_size
        for oh, ow in steps:
            rows.append(axis_taps(h, oh, mode))
            cols.append(axis_taps(w, ow, mode))
            h, w = oh, ow
        return Chain(tuple(in_size), tuple(rows), tuple(cols))

    def values(self, flat: torch.Tensor, k: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, mode: str,
               level: int | None = None) -> torch.Tensor:
        """Class ``k`` at output pixels ``(ys, xs)`` (1-D, same length) after ``level`` steps (default all),
        from ``flat`` = the low-resolution logits [K * h * w] (float32 for ``"approx"``, float64 otherwise)."""
        level = len(self.rows) if level is None else level
        if level == 0:
            h, w = self.in_size
            return flat[(k * h + ys) * w + xs]
        r, c = self.rows[level - 1], self.cols[level - 1]
        dt = flat.dtype
        y0, y1, x0, x1 = r.i0[ys], r.i1[ys], c.i0[xs], c.i1[xs]
        wx0, wx1 = c.w0[xs].to(dt), c.w1[xs].to(dt)
        t0 = _lerp(self.values(flat, k, y0, x0, mode, level - 1), self.values(flat, k, y0, x1, mode, level - 1),
                   wx0, wx1, mode)
        t1 = _lerp(self.values(flat, k, y1, x0, mode, level - 1), self.values(flat, k, y1, x1, mode, level - 1),
                   wx0, wx1, mode)
        return _lerp(t0, t1, r.w0[ys].to(dt), r.w1[ys].to(dt), mode)

    def footprint(self, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per output index along ``axis`` (0 rows, 1 columns): the first and last low-resolution index it reads."""
        taps = self.rows if axis == 0 else self.cols
        lo, hi = taps[-1].i0, taps[-1].i1
        for t in reversed(taps[:-1]):
            lo, hi = t.i0[lo], t.i1[hi]
        return lo, hi


_MODES: dict[tuple, str | None] = {}


def _verified_mode(in_size: tuple[int, int], steps: Sequence[tuple[int, int]]) -> str | None:
    """The arithmetic (``"fma"`` or ``"plain"``) under which the emulation equals ``F.interpolate`` for this size
    chain on this torch build, or None. Checked once per chain and thread count on a random 4-channel probe:
    every output row and column, with random partners, plus random pixels."""
    key = (tuple(in_size), tuple(steps), torch.get_num_threads())
    if key in _MODES:
        return _MODES[key]
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(1, 4, *in_size, generator=gen) * 8
    ref = _resize_chain(probe, steps)[0]
    out_h, out_w = steps[-1]
    ys = torch.cat([torch.arange(out_h), torch.randint(0, out_h, (out_w + 4096,), generator=gen)])
    xs = torch.cat([torch.randint(0, out_w, (out_h,), generator=gen), torch.arange(out_w),
                    torch.randint(0, out_w, (4096,), generator=gen)])
    k = torch.randint(0, 4, ys.shape, generator=gen)
    want = ref[k, ys, xs]
    found = None
    for mode in ("fma", "plain"):
        got = Chain.build(in_size, steps, mode).values(probe.flatten().double(), k, ys, xs, mode).float()
        if torch.equal(got, want):
            found = mode
            break
    _MODES[key] = found
    return found


def _generic_kernel(x: torch.Tensor, steps: Sequence[tuple[int, int]]) -> bool:
    """Whether every step of the reference runs ATen's generic NCHW bilinear kernel on CPU (the one emulated):
    not its channels-last kernel, which it takes for channels-last inputs with C > 3, for outputs with
    H + W <= 128, and for C == 3 on one thread."""
    k, h, w = x.shape[1:]
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous() and k >= 4 and h * w > 1
            and all(oh + ow > 128 for oh, ow in steps))


# --------------------------------------------------------------------------------------------------------------
# the fused labels


def _interval_ids(lo: torch.Tensor, hi: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unique (lo, hi) intervals of one axis: their lo and hi [U] and each output index's interval id [out]."""
    uniq, inverse = torch.unique(lo * (n + 1) + hi, return_inverse=True)
    return uniq // (n + 1), uniq % (n + 1), inverse


def _take(v: torch.Tensor, idx: torch.Tensor, dim: int) -> torch.Tensor:
    """``v.index_select(dim, idx)`` for ``v`` [a, b, K] and dim 0 or 1, copying whole class vectors (fast)."""
    if dim == 0:
        return v.index_select(0, idx)
    a, b, k = v.shape
    return v.reshape(a * b, k).index_select(0, ((torch.arange(a) * b)[:, None] + idx[None]).flatten()).view(a, -1, k)


def _window_reduce(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Min and max of ``x`` [a, b, K] over the index intervals ``[lo, hi]`` along ``dim`` (0 or 1)."""
    mn = mx = _take(x, lo, dim)
    for t in range(1, int((hi - lo).max()) + 1):
        part = _take(x, torch.minimum(lo + t, hi), dim)
        mn, mx = torch.minimum(mn, part), torch.maximum(mx, part)
    return mn, mx


@dataclass(frozen=True)
class Composite:
    """All resize steps along one axis composed into one linear map (float64 weights, for the approximate
    values only): output index o reads ``base[o] + t`` with weight ``weight[o, t]``, t < T."""

    base: torch.Tensor  # int64 [out]
    weight: torch.Tensor  # float64 [out, T]

    @staticmethod
    def build(taps: Sequence[Taps]) -> Composite:
        idx, wt = torch.stack([taps[0].i0, taps[0].i1], 1), torch.stack([taps[0].w0, taps[0].w1], 1)
        for t in taps[1:]:
            idx = torch.cat([idx[t.i0], idx[t.i1]], 1)
            wt = torch.cat([wt[t.i0] * t.w0[:, None], wt[t.i1] * t.w1[:, None]], 1)
        base = idx.min(1).values
        rel = idx - base[:, None]
        weight = torch.zeros(idx.shape[0], int(rel.max()) + 1, dtype=torch.float64).scatter_add_(1, rel, wt)
        return Composite(base, weight)


def _xpass(v: torch.Tensor, widths: Sequence[int]) -> torch.Tensor:
    """Approximate column resize of ``v`` [rows, Kb, w] through the steps' output ``widths`` -> [rows, Kb, W].

    Each step is ``F.interpolate(mode="linear", align_corners=False)`` along the last axis, the same source
    positions and weights as the reference's bilinear step has along x (the steps are separable, so the rows
    can be resized afterwards); float32 rounding only, well within ``tol``. About 3x faster than a matmul with
    the dense (two non-zeros per column) column map.
    """
    for width in widths:
        if width != v.shape[-1]:
            v = F.interpolate(v, size=width, mode="linear", align_corners=False)
    return v


def _ypass(v: torch.Tensor, comp: Composite, lo: int, r0: int, r1: int) -> torch.Tensor:
    """Approximate output rows ``r0:r1`` of ``v`` [rows, Kb, W] (row 0 = source row ``lo``) -> [r1 - r0, Kb, W]."""
    out = torch.empty(r1 - r0, *v.shape[1:], dtype=v.dtype)
    bases, weights = (comp.base[r0:r1] - lo).tolist(), comp.weight[r0:r1].tolist()
    for j, (b, wts) in enumerate(zip(bases, weights, strict=True)):
        taps = [(b + t, wt) for t, wt in enumerate(wts) if wt != 0]
        if len(taps) == 1:
            out[j].copy_(v[taps[0][0]])
        elif len(taps) == 2:  # weights sum to 1 within float rounding: a lerp
            torch.lerp(v[taps[0][0]], v[taps[1][0]], taps[1][1] / (taps[0][1] + taps[1][1]), out=out[j])
        else:
            torch.mul(v[taps[0][0]], taps[0][1], out=out[j])
            for a, wt in taps[1:]:
                out[j].add_(v[a], alpha=wt)
    return out


def _fused_labels(x: torch.Tensor, steps: Sequence[tuple[int, int]], mode: str, softmax: bool,
                  band_elems: int = 1 << 21) -> torch.Tensor | None:
    """:func:`upsample_argmax` on the CPU generic-kernel case (``band_elems``: values per row band); None when
    the exact emulation cannot be trusted (subnormal results)."""
    num_classes, h, w = x.shape[1:]
    chain = Chain.build((h, w), steps, mode)
    out_h, out_w = steps[-1]
    tol = EPS_ULPS * torch.finfo(torch.float32).eps * (float(x.abs().max()) + 1.0)
    thr = 2 * tol + (SOFTMAX_MARGIN if softmax else 0.0)
    # 1. footprint cells (output pixels reading the same low-resolution rectangle) and their candidate classes
    (rlo, rhi, rid), (clo, chi, _) = (_interval_ids(*chain.footprint(a), n) for a, n in ((0, h), (1, w)))
    if 2 * x[0].argmax(0).unique().numel() > num_classes:  # most classes win somewhere (random weights): keep all
        row_cand = torch.ones(rlo.numel(), num_classes, dtype=torch.bool)
    else:
        x_hwc = x[0].permute(1, 2, 0).contiguous()
        rmin, rmax = _window_reduce(x_hwc, rlo, rhi, 0)
        mn, _ = _window_reduce(rmin, clo, chi, 1)
        _, mx = _window_reduce(rmax, clo, chi, 1)
        row_cand = (mx >= mn.amax(2, keepdim=True) - thr).any(1)  # [U, K]: classes that can win in a row interval
    # 2. bands of output rows: the band's candidate classes, approximate values, argmax; near ties kept aside.
    # Columns by 1-D linear interpolation (one per step), rows by lerps, classes in the middle
    # ([rows, K, W]). The argmax without torch's (slow) index reductions: the classes within thr of the maximum
    # are counted and their indices summed by one small matmul; a count of one names the winner.
    labels = torch.empty(out_h, out_w, dtype=torch.int64)
    near_y, near_x = [], []
    rows = Composite.build(chain.rows)
    widths = [ow for _, ow in steps]
    x_rkc = x[0].transpose(0, 1).contiguous()  # [h, K, w]
    span = rows.weight.shape[1] - 1
    r0 = 0
    while r0 < out_h:
        r1 = min(out_h, r0 + max(1, band_elems // (int(row_cand[rid[r0]].sum()) * out_w)))
        classes = torch.nonzero(row_cand[rid[r0:r1]].any(0)).flatten()
        if classes.numel() == 1:
            labels[r0:r1] = classes[0]
            r0 = r1
            continue
        lo, hi = int(rows.base[r0]), min(int(rows.base[r1 - 1]) + span, h - 1)
        v = x_rkc[lo:hi + 1]
        if 2 * classes.numel() > num_classes:  # selecting would cost more than it saves
            classes = torch.arange(num_classes)
        else:
            v = v.index_select(1, classes)
        v = _ypass(_xpass(v, widths), rows, lo, r0, r1)  # [B, Kb, W]
        mask = torch.ge(v, v.amax(1, keepdim=True) - thr, out=torch.empty_like(v))
        stats = torch.matmul(torch.stack([torch.ones(classes.numel()), classes.float()]), mask)  # [B, 2, W]
        labels[r0:r1] = stats[:, 1].long()
        ys, xs = torch.nonzero(stats[:, 0] > 1.5, as_tuple=True)
        near_y.append(ys + r0)
        near_x.append(xs)
        r0 = r1
    if not near_y or sum(t.numel() for t in near_y) == 0:
        return labels
    ny, nx = torch.cat(near_y), torch.cat(near_x)
    # 3. near ties: exact values of every class, then the argmax (of the probabilities in softmax mode)
    n = ny.numel()
    exact = chain.values(x.flatten().double(), torch.arange(num_classes).repeat_interleave(n),
                         ny.repeat(num_classes), nx.repeat(num_classes), mode)
    if bool(((exact.abs() < _TINY) & (exact != 0)).any()):
        return None
    scores = exact.float().view(num_classes, n)
    winners = _softmax_argmax(scores) if softmax else scores.argmax(0)
    if winners is None:
        return None
    labels[ny, nx] = winners
    return labels


def _softmax_argmax(scores: torch.Tensor) -> torch.Tensor | None:
    """``argmax(softmax(scores, 0), 0)`` as the reference computes it for these pixels (columns of [K, n]
    exact logits), or None when that depends on where the pixel sat in the reference's tensor.

    The order of the probabilities is the order of the logits, except that two logits closer than about 1e-6
    (exp accurate to 1 ulp, one rounding each for the difference, exp and division) may give one probability,
    and the lower class then wins. Such pixels are recomputed by the softmax kernel; its arithmetic differs
    between its vectorised body and its tail (tested), so both are run (columns padded to a multiple of
    64 x threads are all in the body, fewer than 16 columns are all tail) and must agree.
    """
    top = scores.topk(2, dim=0).values
    winners = scores.argmax(0)
    close = torch.nonzero(top[0].double() - top[1].double() <= SOFTMAX_MARGIN).flatten()
    if close.numel() == 0:
        return winners
    block = 64 * torch.get_num_threads()  # every thread's share a multiple of 64 columns: all in the body
    cols = torch.cat([close, close.new_full((-close.numel() % block,), int(close[0]))])
    body = scores[:, cols].softmax(0).argmax(0)[:close.numel()]
    tail = torch.cat([scores[:, g].softmax(0).argmax(0) for g in close.split(15)])  # < 16 columns: all tail
    if not torch.equal(body, tail):
        return None
    winners[close] = body
    return winners


def upsample_argmax(logits: torch.Tensor, sizes: Sequence[tuple[int, int]], *, softmax: bool = False,
                    chunk: int = 16) -> torch.Tensor:
    """Argmax over classes of ``logits`` resized bilinearly through ``sizes``, without K full-size maps.

    Equal to ``reference_argmax(logits, sizes, softmax=softmax)`` (bit-identical labels; module docstring).

    Args:
        logits: [1, K, h, w] (or [K, h, w]) low-resolution logits, any float dtype and device.
        sizes: the (H, W) resize steps of the reference, in order (a step equal to the current size is skipped,
            as :func:`vidseg.models.heads.common.resize` and the predictor do).
        softmax: the reference is the argmax of ``softmax`` of the resized logits (mmseg's non-direct path).
        chunk: classes upsampled at once on the class-pruning path (devices other than the CPU).

    Returns:
        int64 [H, W] labels at the last size.
    """
    x = logits if logits.dim() == 4 else logits.unsqueeze(0)
    if x.shape[0] != 1:
        raise ValueError(f"upsample_argmax takes one image [1, K, h, w], got {tuple(logits.shape)}")
    steps = resize_steps(tuple(x.shape[-2:]), sizes)
    if not steps or not bool(torch.isfinite(x).all()):  # NaN/inf: no bound holds, take the plain path
        return reference_argmax(x, sizes, softmax=softmax)
    if x.device.type != "cpu":
        return _pruned_labels(x, steps, softmax, chunk)
    if _generic_kernel(x, steps):
        mode = _verified_mode(tuple(x.shape[-2:]), steps)
        labels = _fused_labels(x, steps, mode, softmax) if mode else None
        if labels is not None:
            return labels
    return reference_argmax(x, sizes, softmax=softmax)


# --------------------------------------------------------------------------------------------------------------
# whole-frame class pruning (other devices) and the reference


def _support_span(in_len: int, steps: Sequence[int]) -> int:
    """How many consecutive low-resolution rows (or columns) one output row can draw on, through ``steps``."""
    lengths = [in_len, *steps]
    span = 1
    for i in range(len(steps), 0, -1):  # from the output back to the input
        scale = lengths[i - 1] / lengths[i]
        span = min(math.ceil((span - 1) * scale) + 2, lengths[i - 1])
    return span


def candidate_classes(logits: torch.Tensor, sizes: Sequence[tuple[int, int]], margin: float = 0.0) -> torch.Tensor:
    """Classes that can be the argmax at some output pixel after resizing ``logits`` [1, K, h, w] through
    ``sizes``; ascending int64 [M] (all K when there is no resize). ``logits`` must be finite.

    With ``N(q)`` a low-resolution window (odd size, centred on q) holding every source of an output pixel and
    ``a(q)`` the low-resolution argmax at q, the winner there is at least ``min over N(q) of x_a(q)`` (convex
    weights); class k is kept if it reaches that floor (minus rounding slack and ``margin``) somewhere.
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
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), value=float("inf"))
    centre_min = torch.full_like(arg, float("inf"), dtype=x.dtype)
    for dy in range(kh):
        for dx in range(kw):
            centre_min = torch.minimum(centre_min, padded[:, :, dy:dy + h, dx:dx + w].gather(1, arg))
    floor = -F.max_pool2d(-centre_min, (kh, kw), stride=1, padding=(kh // 2, kw // 2)) - eps
    return torch.nonzero((x >= floor).flatten(2).any(dim=2)[0]).flatten()


def _pruned_labels(x: torch.Tensor, steps: Sequence[tuple[int, int]], softmax: bool, chunk: int) -> torch.Tensor:
    """Classes that cannot win anywhere are dropped; the rest go through ``F.interpolate`` ``chunk`` at a time
    (bilinear treats channels independently on these devices). Softmax mode: a frame with a runner-up within
    :data:`SOFTMAX_MARGIN` of the winner anywhere takes the plain path."""
    classes = candidate_classes(x, steps, SOFTMAX_MARGIN if softmax else 0.0)
    if classes.numel() == x.shape[1]:
        return reference_argmax(x, steps, softmax=softmax)
    best_val = best_idx = second = None
    for start in range(0, classes.numel(), max(1, int(chunk))):
        ids = classes[start:start + chunk]
        y = _resize_chain(x.index_select(1, ids).contiguous(), steps)[0]  # [c, H, W]
        val, arg = y.max(0)
        runner = y.topk(2, dim=0).values[1] if y.shape[0] > 1 else torch.full_like(val, -math.inf)
        if best_val is None:
            best_val, best_idx, second = val, ids[arg], runner
            continue
        second = torch.maximum(torch.maximum(second, runner), torch.minimum(best_val, val))
        better = val > best_val  # strict: the lower class keeps a tie, as argmax does
        best_val, best_idx = torch.where(better, val, best_val), torch.where(better, ids[arg], best_idx)
    if softmax and bool((best_val - second <= SOFTMAX_MARGIN).any()):
        return reference_argmax(x, steps, softmax=True)
    return best_idx


def _resize_chain(x: torch.Tensor, steps: Sequence[tuple[int, int]]) -> torch.Tensor:
    for size in steps:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


def reference_argmax(logits: torch.Tensor, sizes: Sequence[tuple[int, int]], *, softmax: bool = False
                     ) -> torch.Tensor:
    """The plain path: resize all K classes through ``sizes`` (skipping equal sizes), optionally softmax
    (float32, as :func:`vidseg.inference.tta.logits_to_probs`), then argmax -> int64 [H, W]."""
    x = logits if logits.dim() == 4 else logits.unsqueeze(0)
    scores = _resize_chain(x, resize_steps(tuple(x.shape[-2:]), sizes))[0]
    return (scores.float().softmax(0) if softmax else scores).argmax(0)
