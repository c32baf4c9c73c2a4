"""segment_object_video: DAVIS-layout masks of a frame folder from a first-frame mask, resume, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vidseg.data.davis import read_davis_mask, write_davis_mask
from vidseg.errors import DataError
from vidseg.inference.vos import StcnnVosPredictor
from vidseg.inference.vos_segment import segment_object_video
from vidseg.models.vos.stcnn import build_stcnn


def _folder(tmp_path, n=5, h=64, w=96):
    rng = np.random.default_rng(0)
    folder = tmp_path / "bear"
    folder.mkdir()
    frames = []
    for t in range(n):
        f = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(f).save(folder / f"{t:05d}.png")
        frames.append(f)
    mask = np.zeros((h, w), np.uint8)
    mask[10:30, 10:40], mask[40:60, 60:90] = 1, 2
    write_davis_mask(tmp_path / "00000.png", mask)
    return folder, frames, mask


def test_writes_davis_masks_and_resumes(tmp_path):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_stcnn(layers=(1, 1, 1, 1), width=8, fpn_dim=16, ppm_dim=16)
    folder, frames, mask = _folder(tmp_path)
    predictor = StcnnVosPredictor(model)
    row = segment_object_video(predictor, folder, tmp_path / "00000.png", tmp_path / "out" / "bear", progress=False)
    assert row["written"] == 5 and row["objects"] == [1, 2]
    expected = [o.mask for o in predictor.stream(frames, mask)]
    for t in range(5):
        assert np.array_equal(read_davis_mask(tmp_path / "out" / "bear" / f"{t:05d}.png", False), expected[t])
    again = segment_object_video(predictor, folder, tmp_path / "00000.png", tmp_path / "out" / "bear",
                                 progress=False)
    assert again["skipped"] == 5 and again["written"] == 0
    pytest.importorskip("av")
    row = segment_object_video(predictor, folder, tmp_path / "00000.png", tmp_path / "out" / "bear",
                               overlay=tmp_path / "bear.mp4", progress=False)
    assert row["written"] == 5 and (tmp_path / "bear.mp4").stat().st_size > 0
    write_davis_mask(tmp_path / "small.png", mask[:32])
    with pytest.raises(DataError, match="small.png: first-frame mask is 32x96 but the frames are 64x96"):
        segment_object_video(predictor, folder, tmp_path / "small.png", tmp_path / "o2", progress=False)
