"""STCNN semi-supervised inference: the official test loop, gating, multi-object merge, streaming, errors."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch

from vidseg.errors import DataError
from vidseg.inference.vos import StcnnVosPredictor, dilate_ellipse, gate, merge_objects, stack_indices
from vidseg.models.vos.stcnn import build_stcnn

# official DAVIS_dataloader.py test table (frame_nums 3-6): indices of the temporal input of frames 0..delta
OFFICIAL_TABLE = {
    3: [[0, 0, 0], [0, 0, 1], [0, 1, 2], [0, 1, 2]],
    4: [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3]],
    5: [[0] * 5, [0, 0, 0, 0, 1], [0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]],
    6: [[0] * 6, [0] * 5 + [1], [0] * 4 + [1, 2], [0, 0, 0, 1, 2, 3], [0, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5],
        [0, 1, 2, 3, 4, 5]],
}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("delta", [3, 4, 5, 6])
def test_stack_indices_official_table(delta):
    for t, expected in enumerate(OFFICIAL_TABLE[delta]):
        assert stack_indices(t, delta) == expected
    assert stack_indices(delta + 7, delta) == list(range(7, delta + 7))


def brute_dilate(mask: np.ndarray) -> np.ndarray:
    """Dilation as a correlation with the 80x80 ellipse, padded (left 40, right 39, top 40, bottom 39) (spec §5.7)."""
    kernel = torch.from_numpy(cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (80, 80)).astype(np.float32))
    x = torch.nn.functional.pad(torch.from_numpy((mask > 0).astype(np.float32))[None, None], (40, 39, 40, 39))
    return (torch.nn.functional.conv2d(x, kernel[None, None])[0, 0] > 0).numpy().astype(np.uint8)


def test_dilation_matches_convolution_definition():
    rng = np.random.default_rng(0)
    for density in (0.0005, 0.003):
        mask = rng.random((150, 170)) < density
        assert np.array_equal(dilate_ellipse(mask), brute_dilate(mask))
    single = np.zeros((120, 120), bool)
    single[60, 60] = True
    d = dilate_ellipse(single)
    assert d[60, 21] == 1 and d[60, 100] == 1 and d[60, 20] == 0 and d[60, 101] == 0  # 80 wide: x-39..x+40


def test_gate_threshold_on_pixel_count():
    prob = np.full((200, 200), 0.9)
    tiny = np.zeros((200, 200), bool)
    tiny[100, 100] = True  # dilated: an 80x80 ellipse, > 50 px: gated
    assert gate(prob, tiny)[0, 0] == 0 and gate(prob, tiny)[100, 100] == pytest.approx(0.9)
    assert np.array_equal(gate(prob, np.zeros((200, 200), bool)), prob)  # empty mask: not gated
    assert np.array_equal(gate(prob, tiny, size=3, min_pixels=50), prob)  # 3x3 element: 9 px <= 50


def test_merge_rule():
    probs = np.array([[[0.3, 0.6, 0.7, 0.5]], [[0.2, 0.6, 0.9, 0.41]]], dtype=np.float32)
    assert merge_objects(probs, [2, 5], 0.4).tolist() == [[0, 2, 5, 2]]


def _video(n: int, h: int = 96, w: int = 160) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    frames = []
    for t in range(n):
        f = base.copy()
        f[20 + t:50 + t, 10 + 2 * t:40 + 2 * t] = (250, 40, 40)
        frames.append(f)
    mask = np.zeros((h, w), np.uint8)
    mask[20:50, 10:40] = 1
    mask[70:90, 120:150] = 3
    return frames, mask


def _tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    model = build_stcnn(layers=(1, 1, 1, 1), width=8, fpn_dim=16, ppm_dim=16).eval()
    with torch.no_grad():  # spread the fused logits so probabilities fall on both sides of 0.4
        model.seg_decoder.conv_last[1].weight.mul_(40.0)
    return model


def official_loop(model, frames, gt, delta=4):
    """The official train_online_dream.py test loop for one object, written directly."""
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    out, prev = [], None
    for ii in range(len(frames)):
        seq = [frames[j] for j in OFFICIAL_TABLE[delta][min(ii, delta)]] if ii <= delta else \
            [frames[j] for j in range(ii - delta, ii)]
        stack = np.concatenate(seq, axis=2).astype(np.float32) / 127.5 - 1.0
        frame = (frames[ii].astype(np.float32) / 255 - mean) / std
        mask_ = gt.astype(np.float64) if ii == 0 else (prev > 0.4).astype(np.float64)
        mask__ = brute_dilate(mask_)
        with torch.no_grad():
            logits, _ = model(torch.from_numpy(stack).permute(2, 0, 1)[None].float(),
                              torch.from_numpy(frame).permute(2, 0, 1)[None].float())
        pred = 1 / (1 + np.exp(-logits[-1][0, 0].double().numpy()))
        if np.sum(mask__ > 0) > 50:
            pred = pred * mask__
        prev = pred
        out.append(pred)
    return out


def test_single_object_matches_official_loop():
    model = _tiny_model()
    frames, mask = _video(6)
    mask[mask == 3] = 0
    reference = official_loop(model, frames, mask)
    results = list(StcnnVosPredictor(model).stream(frames, mask))
    assert [r.index for r in results] == list(range(6))
    for r, ref in zip(results, reference):
        np.testing.assert_allclose(r.probs[0], ref, atol=1e-5)
        assert np.array_equal(r.mask, np.where(ref > 0.4, 1, 0).astype(np.uint8)) or \
            np.abs(ref - 0.4).min() < 1e-5
    assert 0 < (results[-1].mask > 0).mean() < 1  # the gating removed some object pixels, kept others


def test_multi_object_one_pass_per_object_and_merge():
    model = _tiny_model()
    frames, mask = _video(5)
    shared = list(StcnnVosPredictor(model).stream(frames, mask))
    per_object = list(StcnnVosPredictor({1: model, 3: copy.deepcopy(model)}).stream(frames, mask))
    refs = {obj: official_loop(model, frames, (mask == obj).astype(np.uint8)) for obj in (1, 3)}
    for t, (a, b) in enumerate(zip(shared, per_object)):
        assert a.ids == [1, 3]
        np.testing.assert_array_equal(a.probs, b.probs)
        expected = np.zeros(mask.shape, np.uint8)
        best = np.maximum(refs[1][t], refs[3][t])
        expected[(best > 0.4) & (refs[1][t] >= refs[3][t])] = 1
        expected[(best > 0.4) & (refs[3][t] > refs[1][t])] = 3
        assert (a.mask != expected).mean() < 1e-3  # float32 vs float64 ties at the threshold only


def test_streaming_reads_lazily():
    model = _tiny_model()
    frames, mask = _video(9)
    consumed = []

    def source():
        for i, f in enumerate(frames):
            consumed.append(i)
            yield f

    predictor = StcnnVosPredictor(model, keep_first_mask=True)
    for out in predictor.stream(source(), mask):
        assert len(consumed) <= max(predictor.delta, out.index + 1)  # at most delta frames ahead
        if out.index == 0:
            assert np.array_equal(out.mask, mask)


def test_bad_inputs_are_one_line_errors():
    model = _tiny_model()
    frames, mask = _video(5)
    predictor = StcnnVosPredictor(model)
    with pytest.raises(DataError, match="clip.mp4: video has 3 frames, fewer than the 4"):
        list(predictor.stream(frames[:3], mask, source="clip.mp4"))
    with pytest.raises(DataError, match="00000.png: first-frame mask is 50x160 but the frames are 96x160"):
        list(predictor.stream(frames, mask[:50], mask_source="00000.png"))
    with pytest.raises(DataError, match="no object"):
        list(predictor.stream(frames, np.zeros_like(mask)))
    with pytest.raises(DataError, match="object id 3 has no model"):
        list(StcnnVosPredictor({1: model}).stream(frames, mask))


def test_read_first_mask_formats(tmp_path):
    from PIL import Image

    from vidseg.categories import davis_palette
    from vidseg.data.davis import write_davis_mask
    from vidseg.inference.vos import read_first_mask

    ids = np.zeros((6, 8), np.uint8)
    ids[1:3, 1:3], ids[4:, 5:] = 1, 3
    ids[0, 7] = 255  # void is read but never an object
    write_davis_mask(tmp_path / "p.png", ids)
    assert np.array_equal(read_first_mask(tmp_path / "p.png"), ids)
    Image.fromarray(davis_palette()[ids]).save(tmp_path / "rgb.png")
    assert np.array_equal(read_first_mask(tmp_path / "rgb.png"), ids)
    Image.fromarray(((ids == 1) * 255).astype(np.uint8)).save(tmp_path / "l.png")
    assert np.array_equal(read_first_mask(tmp_path / "l.png"), (ids == 1).astype(np.uint8))
    odd = davis_palette()[ids].copy()
    odd[0, 0] = (1, 2, 3)
    Image.fromarray(odd).save(tmp_path / "odd.png")
    with pytest.raises(DataError, match=r"odd.png: colour \(1, 2, 3\) is not a DAVIS palette colour"):
        read_first_mask(tmp_path / "odd.png")
    Image.fromarray(ids * 40).save(tmp_path / "grey.png")
    with pytest.raises(DataError, match="grey.png: greyscale mask has values"):
        read_first_mask(tmp_path / "grey.png")
    model = _tiny_model()
    frames, _ = _video(4, 6, 8)
    only_void = np.full((6, 8), 255, np.uint8)
    with pytest.raises(DataError, match="no object"):
        list(StcnnVosPredictor(model).stream(frames, only_void))
