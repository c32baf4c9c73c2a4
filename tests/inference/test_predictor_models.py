"""Streaming equals clip recomputation on the real registered models, at tiny sizes (float32, 1e-5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidseg.data.sampling import CFFMSampler
from vidseg.data.transforms import normalize_frames
from vidseg.inference import VideoPredictor
from vidseg.models import build


def _video(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3)).astype(np.int16)
    # smoothly changing frames, so the supports matter but stay similar
    return [np.clip(base + 6 * i + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8) for i in range(n)]


@torch.no_grad()
def _recompute(model, frames, clips):
    model.eval()
    model.reset_state()
    return [model(normalize_frames(np.stack([frames[i] for i in c]))[None])[0] for c in clips]


def _assert_stream_equals_recompute(model, frames, clips, mode):
    predictor = VideoPredictor(model, mode=mode, return_logits=True)
    preds = list(predictor.predict(frames))
    assert [p.clip for p in preds] == [tuple(c) for c in clips]
    ref = _recompute(model, frames, clips)
    worst = max((p.logits - r).abs().max().item() for p, r in zip(preds, ref, strict=True))
    assert worst < 1e-5, worst
    assert predictor.last_stream.encoded == len(frames)
    return predictor


def test_cffm_b0_streaming_equals_recompute():
    torch.manual_seed(0)
    model = build("cffm_b0", num_classes=7).eval()
    frames = _video(10, 32, 40)  # covers the single-frame, early-table and full [t-9, t-6, t-3, t] clips
    predictor = _assert_stream_equals_recompute(model, frames, CFFMSampler().test_clips(10), "online")
    assert predictor.cache_capacity == 10
    # frames already decoded as targets keep only the 1/8 map the cross-frame head reads from supports
    cached = predictor.last_stream.features[0]
    held = cached.keys()
    assert held and all(cached[i][1] is None for i in held)


def test_segformer_b0_streaming_equals_recompute():
    torch.manual_seed(0)
    model = build("segformer_b0", num_classes=7).eval()
    frames = _video(3, 33, 47)
    _assert_stream_equals_recompute(model, frames, [(i,) for i in range(3)], "online")


def test_tcb_rules_match_the_model():
    model = build("tcb_ocr_r101", num_classes=7, depth=50)
    for mode in ("online", "offline"):
        rule = VideoPredictor(model, mode=mode).rule
        for n in (5, 10, 30):
            for t in range(n):
                assert rule.test_clip(t, n) == (*model.support_indices(t, n, mode), t)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tcb_ppm_r101", "tcb_ocr_mem_r101"])
def test_tcb_offline_streaming_equals_recompute(name):
    torch.manual_seed(0)
    kwargs = {"memory": "official"} if "mem" in name else {}
    model = build(name, num_classes=7, depth=50, **kwargs).eval()
    n = 12
    frames = _video(n, 33, 41)
    # the reference clips come from the model's own rule, independently of the predictor's
    clips = [(*model.support_indices(t, n, "offline"), t) for t in range(n)]
    _assert_stream_equals_recompute(model, frames, clips, "offline")
    clips_online = [(*model.support_indices(t, n, "online"), t) for t in range(n)]
    _assert_stream_equals_recompute(model, frames, clips_online, "online")
