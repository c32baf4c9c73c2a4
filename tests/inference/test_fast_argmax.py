"""upsample_argmax gives the labels of 'resize all logits, then argmax', bit for bit (and the predictor's fast path
gives the plain path's masks on a tiny registered model). The exact emulation of ATen's bilinear kernel and the
row-band path have their own tests in test_fast_argmax_exact.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidseg.inference import VideoPredictor, fast_argmax
from vidseg.inference.fast_argmax import _fused_labels, candidate_classes, reference_argmax, upsample_argmax
from vidseg.models import build

CASES = [  # (K, h, w, resize steps)
    (7, 17, 23, [(61, 97)]),  # odd sizes, ~x4
    (5, 30, 40, [(23, 31)]),  # downsampling
    (9, 10, 12, [(40, 48), (37, 50)]),  # two steps (model input size, then frame size)
    (6, 16, 24, [(64, 96)]),  # exact x4
    (4, 13, 9, [(13, 9)]),  # no resize
    (11, 8, 11, [(21, 53)]),  # non-integer factors, different per axis
    (3, 21, 34, [(84, 136), (83, 133)]),  # CFFM-like: 1/4 -> size_divisor size -> frame
]


def _smooth(k, h, w, gen, cells=4, amp=4.0):
    coarse = torch.randn(1, k, cells, cells, generator=gen) * amp
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)


@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize(("k", "h", "w", "sizes"), CASES)
def test_equals_reference_on_random_and_smooth_logits(k, h, w, sizes, softmax):
    gen = torch.Generator().manual_seed(k * 100 + h)
    for logits in (torch.randn(1, k, h, w, generator=gen), _smooth(k, h, w, gen),
                   _smooth(k, h, w, gen) - 30.0 * (torch.arange(k) % 2 == 1).float().view(1, k, 1, 1)):
        ref = reference_argmax(logits, sizes, softmax=softmax)
        assert torch.equal(upsample_argmax(logits, sizes, softmax=softmax, chunk=2), ref)
        assert set(ref.unique().tolist()) <= set(candidate_classes(logits, sizes).tolist())


@pytest.mark.parametrize("softmax", [False, True])
def test_near_ties_and_exact_ties(softmax):
    gen = torch.Generator().manual_seed(3)
    k, h, w, sizes = 6, 12, 17, [(45, 71)]
    base = _smooth(k, h, w, gen)
    tied = base.clone()
    tied[:, 4] = tied[:, 1]  # exact ties everywhere: the lower class must win, as torch.argmax does
    ulp = base.clone()
    ulp[:, 3] = torch.nextafter(base[:, 0], torch.tensor(float("inf")))  # 1 ulp above class 0
    ulp[:, 5] = base[:, 0] - 1e-6
    for logits in (tied, ulp):
        fast = upsample_argmax(logits, sizes, softmax=softmax, chunk=2)
        assert torch.equal(fast, reference_argmax(logits, sizes, softmax=softmax))
    assert not (upsample_argmax(tied, sizes) == 4).any()


def test_candidates_prune_classes_that_cannot_win():
    k, h, w = 8, 16, 20
    logits = torch.full((1, k, h, w), -8.0)
    logits[:, 2] = torch.where(torch.arange(w) < 10, 3.0, -2.0)  # class 2 left, runner-up on the right
    logits[:, 6] = torch.where(torch.arange(w) < 10, -2.0, 3.0)
    assert candidate_classes(logits, [(64, 80)]).tolist() == [2, 6]
    labels = upsample_argmax(logits, [(64, 80)])
    assert torch.equal(labels, reference_argmax(logits, [(64, 80)]))
    assert set(labels.unique().tolist()) == {2, 6}


def test_softmax_rounding_ties_follow_the_probabilities():
    # logits 1 ulp apart (within SOFTMAX_MARGIN): the frame takes the plain path in softmax mode
    # (test_official_parity has a real case: one pixel of a toy model where two probabilities round equal)
    k, h, w, sizes = 4, 6, 8, [(6, 9)]
    logits = torch.full((1, k, h, w), -10.0)
    logits[:, 1] = 5.0
    logits[:, 3] = torch.nextafter(torch.tensor(5.0), torch.tensor(10.0))
    for softmax in (False, True):
        assert torch.equal(upsample_argmax(logits, sizes, softmax=softmax),
                           reference_argmax(logits, sizes, softmax=softmax))


def test_non_finite_logits_take_the_plain_path():
    logits = torch.randn(1, 4, 6, 7)
    logits[0, 1, 2, 3] = float("nan")
    logits[0, 2, 0, 0] = float("inf")
    assert torch.equal(upsample_argmax(logits, [(23, 29)]), reference_argmax(logits, [(23, 29)]))


def _video(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3)).astype(np.int16)
    return [np.clip(base + 5 * i + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8) for i in range(n)]


def _mute_classes(model, num_classes):
    """Push odd classes far down so the candidate pruning is exercised, not only its all-classes fallback."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d) and m.out_channels == num_classes and m.bias is not None:
                m.bias[1::2] -= 40.0


@pytest.mark.parametrize(("name", "options"), [
    ("segformer_b0", {}),
    ("cffm_b0", {"img_scale": (112, 80), "size_divisor": 32}),  # two resize steps: 96x128 model input
])
@pytest.mark.parametrize("mute", [False, True])
def test_predictor_fast_path_gives_the_plain_masks(name, options, mute, monkeypatch):
    torch.manual_seed(0)
    model = build(name, num_classes=6).eval()
    if mute:
        _mute_classes(model, 6)
    frames = _video(3, 64, 96)  # large enough for ATen's generic bilinear kernel (H + W > 128): the row bands
    fused = []
    monkeypatch.setattr(fast_argmax, "_fused_labels",
                        lambda *a, **k: fused.append(1) or _fused_labels(*a, **k))
    fast = [p.labels for p in VideoPredictor(model, **options).predict(frames)]
    assert len(fused) == 3
    plain = [p.labels for p in VideoPredictor(model, fast_argmax=False, **options).predict(frames)]
    for a, b in zip(fast, plain, strict=True):
        assert a.dtype == b.dtype == np.uint8 and np.array_equal(a, b)
    if mute:
        assert not any((lab % 2 == 1).any() for lab in fast)
