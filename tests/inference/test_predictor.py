"""Streaming VideoPredictor: equals clip recomputation, bounded cache, rules, skip, TTA, ensembling, inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_segmenter import ToySegmenter

from vidseg.data.sampling import CFFMSampler, OffsetSampler, TCBSampler
from vidseg.data.transforms import normalize_frames
from vidseg.errors import DataError
from vidseg.inference import TTA, EnsemblePredictor, VideoPredictor, predict_image_probs, rule_for_model


def _video(n: int, h: int = 20, w: int = 28, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@torch.no_grad()
def recompute(model, frames, clips):
    """Reference: model.forward on every clip stacked from scratch, in target order, after a reset."""
    model.eval()
    model.reset_state()
    return [model(normalize_frames(np.stack([frames[i] for i in clip]))[None])[0] for clip in clips]


def _check_equal(model, frames, clips, mode="online"):
    predictor = VideoPredictor(model, mode=mode, return_logits=True)
    preds = list(predictor.predict(iter(frames)))
    assert [p.index for p in preds] == list(range(len(frames)))
    assert [p.clip for p in preds] == [tuple(c) for c in clips]
    ref = recompute(model, frames, clips)
    for p, r in zip(preds, ref, strict=True):
        assert p.logits.dtype == torch.float32
        assert (p.logits - r).abs().max().item() < 1e-5
        np.testing.assert_array_equal(p.labels, r.argmax(0).numpy())
    return predictor, preds


def test_cffm_rule_streaming_equals_recompute():
    model = ToySegmenter(cffm_like=True)
    frames = _video(23)
    clips = CFFMSampler().test_clips(23)
    predictor, _ = _check_equal(model, frames, clips)
    stream = predictor.last_stream
    assert stream.encoded == 23  # each frame through the backbone exactly once
    assert stream.peak_cached <= 10


def test_generic_offsets_online():
    model = ToySegmenter(support_offsets=(-2, -1))
    frames = _video(9)
    _check_equal(model, frames, OffsetSampler((-2, -1)).test_clips(9))


def test_tcb_offline_rule_future_supports_equals_recompute():
    model = ToySegmenter(support_offsets=(-9, -6, -3), offline_support_offsets=(3, 6, 9))
    frames = _video(25)
    clips = TCBSampler((3, 6, 9)).test_clips(25)
    predictor, _ = _check_equal(model, frames, clips, mode="offline")
    assert predictor.last_stream.encoded == 25
    assert predictor.reach.ahead == 9 and predictor.reach.back == 9
    # offline output lags the input by the lookahead
    stream = predictor.stream()
    got = [len(stream.push(f)) for f in frames[:12]]
    assert got == [0] * 9 + [1, 1, 1]
    assert len(stream.finish()) == 9


def test_stateful_model_reset_per_video_and_equal_to_recompute():
    model = ToySegmenter(support_offsets=(-1,), stateful=True)
    frames = _video(8)
    clips = OffsetSampler((-1,)).test_clips(8)
    _check_equal(model, frames, clips)
    resets = model.resets
    predictor = VideoPredictor(model, return_logits=True)
    a = [p.logits for p in predictor.predict(frames)]
    b = [p.logits for p in predictor.predict(frames)]
    assert model.resets == resets + 2
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(("mode", "offline", "bound"), [("online", None, 10), ("offline", (3, 6, 9), 19)])
def test_cache_is_bounded_independent_of_length(mode, offline, bound):
    model = ToySegmenter(cffm_like=offline is None, offline_support_offsets=offline, width=2)
    peaks = []
    for n in (30, 120):
        predictor = VideoPredictor(model, mode=mode)
        count = sum(1 for _ in predictor.predict(_video(n, 8, 8)))
        assert count == n
        assert predictor.cache_capacity == bound
        peaks.append(predictor.last_stream.peak_cached)
        assert predictor.last_stream.encoded == n
    assert peaks[0] == peaks[1] <= bound


def test_skip_targets_still_feed_supports():
    model = ToySegmenter(cffm_like=True)
    frames = _video(16)
    full = list(VideoPredictor(model).predict(frames))
    predictor = VideoPredictor(model)
    part = list(predictor.predict(frames, skip=lambda i, name: i not in (5, 15)))
    assert [p.skipped for p in part] == [i not in (5, 15) for i in range(16)]
    assert all(p.labels is None for p in part if p.skipped)
    for i in (5, 15):
        np.testing.assert_array_equal(full[i].labels, part[i].labels)
    # only the frames of the two remaining clips were encoded: (0, 2, 4, 5) and (6, 9, 12, 15)
    assert predictor.last_stream.encoded == 8


def test_tta_views_average_softmax():
    model = ToySegmenter(support_offsets=())
    frames = _video(3, 24, 32)
    tta = TTA(scales=(0.5, 1.0, 1.5), flip=True)
    preds = list(VideoPredictor(model, tta=tta, return_probs=True).predict(frames))
    for p, f in zip(preds, frames, strict=True):
        ref = predict_image_probs(model, f, tta)
        assert p.probs.shape == (5, 24, 32)
        assert torch.allclose(p.probs, ref, atol=1e-6)
        assert torch.allclose(p.probs.sum(0), torch.ones(24, 32), atol=1e-5)
    # flip-only view by hand: mean of softmax(f(x)) and flip(softmax(f(flip(x))))
    with torch.no_grad():
        x = normalize_frames(frames[0])[None, None]
        a = model(x)[0].softmax(0)
        b = model(x.flip(-1))[0].softmax(0).flip(-1)
    flip_only = list(VideoPredictor(model, tta=TTA(scales=(1.0,), flip=True), return_probs=True).predict(frames[:1]))
    assert torch.allclose(flip_only[0].probs, (a + b) / 2, atol=1e-6)


def test_tta_on_video_model_encodes_once_per_view():
    model = ToySegmenter(cffm_like=True)
    predictor = VideoPredictor(model, tta=TTA(scales=(0.75, 1.25), flip=True))
    preds = list(predictor.predict(_video(12)))
    assert len(preds) == 12 and preds[0].labels.shape == (20, 28)
    assert predictor.last_stream.encoded == 12 * 4


def test_ensemble_averages_probabilities():
    m1 = ToySegmenter(cffm_like=True, seed=1)
    m2 = ToySegmenter(support_offsets=(-9, -6, -3), offline_support_offsets=(3, 6, 9), seed=2)
    frames = _video(14)
    p1 = list(VideoPredictor(m1, return_probs=True).predict(frames))
    p2 = list(VideoPredictor(m2, mode="offline", return_probs=True).predict(frames))
    ens = EnsemblePredictor([VideoPredictor(m1), VideoPredictor(m2, mode="offline")], return_probs=True)
    out = list(ens.predict(frames))
    assert [p.index for p in out] == list(range(14))
    for e, a, b in zip(out, p1, p2, strict=True):
        assert torch.allclose(e.probs, (a.probs + b.probs) / 2, atol=1e-6)
        np.testing.assert_array_equal(e.labels, e.probs.argmax(0).numpy())
    weighted = list(EnsemblePredictor([VideoPredictor(m1), VideoPredictor(m2)], weights=[1.0, 0.0]).predict(frames))
    for e, a in zip(weighted, p1, strict=True):
        np.testing.assert_array_equal(e.labels, a.labels)
    with pytest.raises(ValueError):
        EnsemblePredictor([VideoPredictor(m1), VideoPredictor(ToySegmenter(num_classes=3))])


def test_inputs_frame_folder_and_video_file(tmp_path):
    from PIL import Image

    frames = _video(5, 16, 24)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"img_{i:03d}.png")
    model = ToySegmenter(support_offsets=(-1,))
    from_folder = list(VideoPredictor(model, return_logits=True).predict(folder))
    from_list = list(VideoPredictor(model, return_logits=True).predict(frames))
    assert [p.name for p in from_folder] == [f"img_{i:03d}" for i in range(5)]
    assert [p.name for p in from_list] == [f"{i:08d}" for i in range(1, 6)]
    for a, b in zip(from_folder, from_list, strict=True):
        assert torch.equal(a.logits, b.logits)
    av = pytest.importorskip("av")
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 24, 16, "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    from_file = list(VideoPredictor(model).predict(path))
    assert len(from_file) == 5 and from_file[0].labels.shape == (16, 24)


def test_bad_frames_raise():
    model = ToySegmenter(support_offsets=())
    with pytest.raises(DataError, match="uint8"):
        list(VideoPredictor(model).predict([np.zeros((8, 8, 3), np.float32)]))
    with pytest.raises(DataError, match="differs"):
        list(VideoPredictor(model).predict([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)]))
    with pytest.raises(DataError):
        list(VideoPredictor(model).predict([np.zeros((8, 8), np.uint8)]))


def test_rule_selection():
    assert isinstance(rule_for_model(ToySegmenter(cffm_like=True)), CFFMSampler)
    assert isinstance(rule_for_model(ToySegmenter()), OffsetSampler)
    tcb_like = ToySegmenter(offline_support_offsets=(3, 6, 9))
    assert isinstance(rule_for_model(tcb_like, "offline"), TCBSampler)
    assert isinstance(rule_for_model(tcb_like, "online"), OffsetSampler)
    from vidseg.errors import ConfigError

    with pytest.raises(ConfigError):
        rule_for_model(tcb_like, "sideways")
