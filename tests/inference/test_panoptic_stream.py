"""Streaming Clip-PanoFCN: clips of 3 over any length, tracking across clips, bounded state, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidseg.errors import DataError
from vidseg.inference.panoptic import PanopticVideoPredictor, apply_tracks, frames_to_tensor
from vidseg.models.panoptic.clip_panofcn import PIXEL_MEAN, build_tiny_clip_panofcn
from vidseg.models.panoptic.inference import clip_inference, vipseg_settings
from vidseg.models.panoptic.tracking import EmbeddingTracker
from vidseg.structures import decode_panoptic


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_tiny_clip_panofcn().eval()
    with torch.no_grad():  # make things and stuff appear with random weights
        m.position_head.out_inst.bias.fill_(0.0)
        m.kernel_head.out_conv.weight.mul_(5)
        m.thing_generator.embed_extractor.weight.mul_(30)
        m.stuff_generator.embed_extractor.weight.mul_(30)
    return m


def _video(n, h=32, w=48, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(h + 2 * n, w + 2 * n, 3)).astype(np.uint8)
    base[5:25, 5:30] = (250, 20, 20)
    return [np.ascontiguousarray(base[i: i + h, i: i + w]) for i in range(n)]


def _settings():
    return vipseg_settings(stuff_area_limit=50)


def test_stream_equals_clipwise_inference_and_tracking(model):
    frames = _video(4, h=32, w=32)
    preds = list(PanopticVideoPredictor(model, settings=_settings()).predict(frames))
    assert [p.index for p in preds] == list(range(4))
    assert [p.name for p in preds] == [f"{i + 1:08d}" for i in range(4)]
    tracker = EmbeddingTracker()
    expected = []
    for start in (0, 3):  # non-overlapping clips of 3, the last one shorter
        clip = frames[start: start + 3]
        with torch.no_grad():
            out = model(frames_to_tensor(clip, torch.device("cpu"), torch.float32))
        res = clip_inference(model, out, _settings())
        track = apply_tracks(res, tracker.update(res.embeddings))
        expected += [(res.category[i].numpy(), track[i].numpy()) for i in range(len(clip))]
    for p, (cat, track) in zip(preds, expected):
        np.testing.assert_array_equal(p.category, cat)
        np.testing.assert_array_equal(p.track, track)
    assert any((p.track >= 0).any() for p in preds) and any((p.category >= 0).any() for p in preds)


def test_library_and_official_ids(model):
    pred = next(iter(PanopticVideoPredictor(model, settings=_settings()).predict(_video(2))))
    category, instance = decode_panoptic(pred.ids, 1000)
    thing = pred.track >= 0
    np.testing.assert_array_equal(instance[thing], pred.track[thing] + 1)
    np.testing.assert_array_equal(category[pred.category >= 0], pred.category[pred.category >= 0])
    assert (pred.ids[pred.category < 0] == 0).all()
    official = pred.official_ids()
    np.testing.assert_array_equal(official[thing], pred.category[thing] * 100 + pred.track[thing])
    assert (official[pred.category < 0] == -1).all()


def test_normalisation_is_the_official_one():
    frame = np.full((4, 5, 3), 200, dtype=np.uint8)
    x = frames_to_tensor([frame], torch.device("cpu"), torch.float32)
    assert tuple(x.shape) == (1, 1, 3, 4, 5)
    torch.testing.assert_close(x[0, 0, :, 0, 0], 200 - torch.tensor(PIXEL_MEAN))


def test_state_is_bounded_by_tracks_not_length(model, monkeypatch):
    """Only one clip is alive: the model never sees more than clip_length frames; the tracker holds tracks."""
    seen = []
    original = model.forward

    def spy(frames):
        seen.append(frames.shape[1])
        return original(frames)

    monkeypatch.setattr(model, "forward", spy)
    predictor = PanopticVideoPredictor(model, settings=_settings())
    stream = predictor.predict(_video(7, h=32, w=32))
    first = next(stream)
    assert first.index == 0 and seen == [3]  # the first frame comes out after one clip, not the whole video
    rest = list(stream)
    assert len(rest) == 6 and seen == [3, 3, 1]
    assert predictor.tracker.num_tracks() <= 4 * 100  # top-100 things per clip at most


def test_frame_by_frame_mode(model):
    preds = list(PanopticVideoPredictor(model, settings=_settings(), clip_length=1).predict(_video(3)))
    assert len(preds) == 3


def test_bad_input(model):
    predictor = PanopticVideoPredictor(model, settings=_settings())
    frames = _video(4)
    frames[3] = frames[3][:-2]
    with pytest.raises(DataError, match="differs from the video"):
        list(predictor.predict(frames))
    with pytest.raises(DataError, match="no frames"):
        list(predictor.predict([]))
    with pytest.raises(DataError, match="uint8"):
        list(predictor.predict([np.zeros((8, 8, 3), dtype=np.float32)]))
    with pytest.raises(DataError, match="empty clip"):
        predictor.segment_clip([])
    with pytest.raises(ValueError, match="clip_length"):
        PanopticVideoPredictor(model, clip_length=0)
