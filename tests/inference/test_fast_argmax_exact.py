"""The row-band labels of fast_argmax against the reference, bit for bit, and the exact emulation of ATen's bilinear
kernel it relies on for near ties (source indices, weights, fused multiply-adds, double-rounding fix, softmax)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidseg.inference import fast_argmax as fa
from vidseg.inference.fast_argmax import Chain, axis_taps, reference_argmax, resize_steps, upsample_argmax


def _sizes(seed: int, n: int) -> list[tuple[int, int, int, int]]:
    """Random (h, w, H, W): up- and downsampling, non-integer factors, one identity axis now and then; H + W > 128
    so that ATen takes its generic kernel (the one emulated)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        h, w = (int(v) for v in rng.integers(2, 36, 2))
        hh, ww = int(h * rng.uniform(0.5, 4.5)) + 1, int(w * rng.uniform(0.5, 4.5)) + 1
        if len(out) % 5 == 4:
            hh = h
        if hh + ww > 128:
            out.append((h, w, hh, ww))
    return out


@pytest.mark.parametrize(("h", "w", "hh", "ww"), _sizes(0, 16))
def test_emulation_equals_f_interpolate_everywhere(h, w, hh, ww):
    mode = fa._verified_mode((h, w), [(hh, ww)])
    assert mode in ("fma", "plain")  # one of the two known arithmetics is this torch build's
    x = torch.randn(1, 4, h, w) * 7
    ref = F.interpolate(x, size=(hh, ww), mode="bilinear", align_corners=False)[0]
    k, ys, xs = (t.flatten() for t in torch.meshgrid(torch.arange(4), torch.arange(hh), torch.arange(ww), indexing="ij"))
    got = Chain.build((h, w), [(hh, ww)], mode).values(x.flatten().double(), k, ys, xs, mode).float()
    assert torch.equal(got.view(4, hh, ww), ref)


def test_two_step_emulation_and_taps():
    x = torch.randn(1, 4, 30, 54) * 5
    steps = [(120, 224), (120, 213)]  # CFFM: size_divisor size, then the frame
    mode = fa._verified_mode((30, 54), steps)
    ref = fa._resize_chain(x, steps)[0]
    k, ys, xs = (t.flatten() for t in torch.meshgrid(torch.arange(4), torch.arange(120), torch.arange(213), indexing="ij"))
    got = Chain.build((30, 54), steps, mode).values(x.flatten().double(), k, ys, xs, mode).float()
    assert torch.equal(got.view(4, 120, 213), ref)
    taps = axis_taps(10, 40, mode)  # x4: output 0 and 1 clamp to source 0; weights sum to one
    assert taps.i0[:2].tolist() == [0, 0] and taps.w1[:2].tolist() == [0.0, 0.0]
    assert taps.i1[-1] == taps.i0[-1] == 9
    assert torch.allclose(taps.w0 + taps.w1, torch.ones(40, dtype=torch.float64))
    ident = axis_taps(7, 7, mode)
    assert torch.equal(ident.i0, torch.arange(7)) and bool((ident.w0 == 1).all())


def test_fma32_rounds_once():
    # exact a*b + c = 1 + 2^-23 + 2^-24 - 2^-60: just below the float32 midpoint between 1 + 2^-23 and 1 + 2^-22.
    # float64 rounds it onto the midpoint and a second rounding (ties to even) would give 1 + 2^-22.
    a = torch.tensor([1 + 2.0 ** -18], dtype=torch.float64)
    b = torch.tensor([2.0 ** -24 * (1 - 2.0 ** -18)], dtype=torch.float64)
    c = torch.tensor([1 + 2.0 ** -23], dtype=torch.float64)
    assert float((a * b + c).float()) == 1 + 2.0 ** -22  # the naive double rounding is wrong here
    assert float(fa._fma32(a, b, c)) == 1 + 2.0 ** -23
    assert float(fa._fma32(a, b, -c)) == -(1 + 2.0 ** -23)
    rng = np.random.default_rng(1)  # ordinary values: same as one float64 rounding
    a, b, c = (torch.from_numpy(rng.standard_normal(1000).astype(np.float32)).double() for _ in range(3))
    assert torch.equal(fa._fma32(a, b, c), (a * b + c).float().double())


@pytest.mark.parametrize("threads", [1, 2])
def test_softmax_argmax_of_a_few_pixels_is_the_full_tensors(threads):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(threads)
        x = torch.randn(124, 37, 53, generator=gen) * 3
        runner = x.topk(2, dim=0).indices[1]
        near = x.gather(0, runner[None])[0] + torch.randint(0, 40, (37, 53), generator=gen) * 2e-7  # ~ulp apart
        x.scatter_(0, x.argmax(0)[None], near[None])
        ref = x.softmax(0).argmax(0)
        ys, xs = torch.meshgrid(torch.arange(37), torch.arange(53), indexing="ij")
        got = fa._softmax_argmax(x[:, ys.flatten(), xs.flatten()].contiguous())
        assert got is not None and torch.equal(got.view(37, 53), ref)
    finally:
        torch.set_num_threads(old)


def _logits(kind: str, k: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "random":
        return torch.randn(1, k, h, w, generator=gen)
    if kind == "smooth":  # a few classes own regions, as a trained model's
        coarse = torch.randn(1, k, 3, 4, generator=gen) * 6
        return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    ties = torch.randint(-2, 3, (1, k, h, w), generator=gen).float()  # many exact ties, also after resizing
    ties[:, k - 1] = ties[:, 1]
    return ties


@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize("kind", ["random", "smooth", "ties"])
@pytest.mark.parametrize("seed", range(3))
def test_row_bands_equal_the_reference(seed, kind, softmax):
    gen = torch.Generator().manual_seed(seed)
    for h, w, hh, ww in _sizes(100 + seed, 2):
        k = int(torch.randint(4, 12 if kind == "ties" else 30, (1,), generator=gen))  # ties: most pixels exact
        chains = [[(hh, ww)], [(hh, ww + 5), (hh, ww)], [(hh + 3, ww + 2), (hh, ww)]]
        for i, sizes in enumerate(chains):
            x = _logits(kind, k, h, w, gen)
            steps = resize_steps((h, w), sizes)
            mode = fa._verified_mode((h, w), steps)
            ref = reference_argmax(x, sizes, softmax=softmax)
            bands = (1, 700, 1 << 21) if i == 0 else (700,)  # one row per band, a few rows, one band
            for band in bands:
                assert torch.equal(fa._fused_labels(x, steps, mode, softmax, band), ref), (h, w, sizes, band)
            assert torch.equal(upsample_argmax(x, sizes, softmax=softmax), ref)
            if kind == "ties" and not softmax:
                assert not (ref == k - 1).any()  # the lower of two tied classes wins


def test_frame_size_and_cffm_chain_on_segformer_like_logits():
    gen = torch.Generator().manual_seed(7)
    coarse = torch.randn(1, 124, 4, 7, generator=gen) * 3  # 124 classes at 1/4 of a 120x213 frame
    x = F.interpolate(coarse, size=(30, 54), mode="bilinear", align_corners=False) + 0.3 * torch.randn(
        1, 124, 30, 54, generator=gen)
    for sizes, softmax in (([(120, 213)], False), ([(120, 224), (120, 213)], True)):
        steps = resize_steps((30, 54), sizes)
        assert torch.equal(fa._fused_labels(x, steps, fa._verified_mode((30, 54), steps), softmax, 1 << 14),
                           reference_argmax(x, sizes, softmax=softmax))


@pytest.mark.parametrize("case", ["channels_last", "three_classes", "small_output", "float64"])
def test_cases_outside_the_emulated_kernel_take_the_plain_path(case, monkeypatch):
    x = torch.randn(1, 3 if case == "three_classes" else 6, 12, 20)
    sizes = [(30, 40)] if case == "small_output" else [(48, 80)]
    if case == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    if case == "float64":
        x = x.double()
    assert not fa._generic_kernel(x, resize_steps((12, 20), sizes))
    assert torch.equal(upsample_argmax(x, sizes), reference_argmax(x, sizes))
    monkeypatch.setattr(fa, "_fused_labels", lambda *a, **k: pytest.fail("fused path taken"))
    upsample_argmax(x, sizes)
