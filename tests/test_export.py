"""ONNX export of image models and of video models' per-frame step, checked with onnxruntime (1e-4)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "inference"))
from toy_segmenter import ToySegmenter  # noqa: E402

from vidseg.errors import ConfigError  # noqa: E402
from vidseg.export import check_onnx, export_onnx, run_onnx  # noqa: E402

pytest.importorskip("onnxruntime")


def test_toy_image_model(tmp_path):
    model = ToySegmenter(support_offsets=())
    path = tmp_path / "toy.onnx"
    assert export_onnx(model, path, image_size=(20, 28)) is None
    assert check_onnx(model, path, image_size=(20, 28)) < 1e-4


def test_toy_step_matches_streaming(tmp_path):
    model = ToySegmenter(support_offsets=(-2, -1))
    path = tmp_path / "step.onnx"
    spec = export_onnx(model, path, step=True, image_size=(20, 28))
    assert spec.num_supports == 2 and spec.used == [True, False]  # the colour mean of supports is unused
    assert check_onnx(model, path, step=True, image_size=(20, 28)) < 1e-4
    # run the ONNX step as a stream with its own ring buffer; compare with the PyTorch predictor
    from vidseg.data.transforms import normalize_frames
    from vidseg.inference import VideoPredictor

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (20, 28, 3), dtype=np.uint8) for _ in range(6)]
    ref = list(VideoPredictor(model, return_logits=True).predict(frames))
    cache: dict[int, np.ndarray] = {}
    for t, frame in enumerate(frames):
        x = normalize_frames(frame)[None]
        inputs = {"image": x}
        for i, s in enumerate((max(t - 2, 0), max(t - 1, 0))):
            inputs[f"support{i}_0"] = torch.from_numpy(cache[s]) if s in cache else model.encode_frame(x)[0]
        logits, feat = run_onnx(path, inputs)
        cache[t] = feat
        if t >= 2:  # from frame 2 on every support comes from the cache
            assert np.abs(logits[0] - ref[t].logits.numpy()).max() < 1e-4


def test_export_errors(tmp_path):
    with pytest.raises(ConfigError, match="step"):
        export_onnx(ToySegmenter(), tmp_path / "a.onnx", image_size=(8, 8))
    with pytest.raises(ConfigError, match="image model"):
        export_onnx(ToySegmenter(support_offsets=()), tmp_path / "b.onnx", step=True, image_size=(8, 8))
    assert not list(tmp_path.iterdir())


def test_cffm_b0_step(tmp_path):
    from vidseg.models import build

    model = build("cffm_b0", num_classes=7)
    path = tmp_path / "cffm_step.onnx"
    spec = export_onnx(model, path, step=True, image_size=(64, 96))
    assert spec.num_supports == 3 and spec.used == [True, False]  # supports give only their 1/8 map
    assert check_onnx(model, path, step=True, image_size=(64, 96)) < 1e-4


@pytest.mark.slow
def test_tcb_ocr_step(tmp_path):
    from vidseg.models import build

    model = build("tcb_ocr_r101", num_classes=7, depth=50)
    path = tmp_path / "tcb_step.onnx"
    spec = export_onnx(model, path, step=True, image_size=(48, 64))
    assert spec.num_supports == 3
    assert check_onnx(model, path, step=True, image_size=(48, 64)) < 1e-4


def test_cli_export(tmp_path, capsys):
    """Also the SegFormer-B0 image export, checked by the command against onnxruntime."""
    from vidseg.cli.main import main

    out = tmp_path / "s.onnx"
    assert main(["export", "--model", "segformer_b0", "--out", str(out), "--size", "32x48", "--num-classes", "5"]) == 0
    text = capsys.readouterr().out
    assert "max abs diff" in text and out.stat().st_size > 1000
    assert main(["export", "--model", "cffm_b0", "--out", str(tmp_path / "x.onnx"), "--size", "32x48"]) == 2
    assert "--step" in capsys.readouterr().err
