"""``vidseg segment`` with no test options runs each model's official test pipeline.

The masks written by the command are compared with ``tests/official_restatement.py`` (the official pipelines
re-stated from their semantics) run with the same model. In the default suite the registered model is replaced
by a small conv net with the same clip rule (building and running CFFM/SegFormer/TCB at 480p takes minutes on
this machine); the slow tests use the registered models themselves with saved random weights.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vidseg.models
from official_restatement import run_official, write_video
from vidseg.cli import test_options
from vidseg.cli.main import main
from vidseg.data.sampling import SHORT_VIDEO_RULES
from vidseg.data.transforms import NORMALIZATIONS
from vidseg.inference.rules import MODES
from vidseg.inference.tta import TTA_SCALES

sys.path.insert(0, str(Path(__file__).parents[1] / "inference"))
from toy_segmenter import ToySegmenter  # noqa: E402

FAMILY = {"cffm_b0": "cffm", "segformer_b0": "segformer", "tcb_ocr_mem_r101": "tcb"}


def toy_model(family: str) -> ToySegmenter:
    """A small conv net with the clip rule of ``family`` (as in tests/inference/test_official_parity.py)."""
    if family == "cffm":
        return ToySegmenter(num_classes=3, width=4, cffm_like=True, seed=1)
    if family == "tcb":
        return ToySegmenter(num_classes=3, width=4, offline_support_offsets=(3, 6, 9), stateful=True, seed=2)
    return ToySegmenter(num_classes=3, width=4, support_offsets=(), seed=3)


def masks(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def test_cli_choices_are_the_library_constants():
    assert set(test_options.NORMALIZATION_CHOICES) == set(NORMALIZATIONS)
    assert tuple(test_options.MODE_CHOICES) == tuple(MODES)
    assert tuple(test_options.SHORT_VIDEO_CHOICES) == tuple(SHORT_VIDEO_RULES)
    assert set(test_options.TTA_DATASET_CHOICES) == set(TTA_SCALES)


@pytest.fixture
def captured(monkeypatch):
    """Replace load_model by a toy model of the same family, record the arguments of load_model/make_predictor."""
    calls: dict = {}

    def load_model(name, weights=None, *, num_classes=124, strict=True, **overrides):
        calls["load"] = overrides
        return toy_model(FAMILY.get(name, "segformer"))

    real = vidseg.models.make_predictor

    def make_predictor(name, model, **options):
        calls["predictor"] = options
        return real(name, model, **options)

    monkeypatch.setattr(vidseg.models, "load_model", load_model)
    monkeypatch.setattr(vidseg.models, "make_predictor", make_predictor)
    return calls


@pytest.mark.parametrize("name,size_wh,num", [
    pytest.param("cffm_b0", (854, 480), 10, marks=pytest.mark.slow),  # its pipeline: tests/inference (default)
    ("segformer_b0", (1024, 436), 2), ("tcb_ocr_mem_r101", (96, 64), 18)])
def test_segment_without_flags_reproduces_the_official_test(tmp_path, captured, name, size_wh, num):
    family = FAMILY[name]
    paths = write_video(tmp_path / "v", *size_wh, num=num)
    assert main(["segment", str(tmp_path / "v"), "--model", name, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    settings = vidseg.models.official_settings(name)
    _, official = run_official(toy_model(family), paths, family, settings.img_scale, settings.size_divisor)
    ours = masks(tmp_path / "out" / "v")
    assert len(ours) == num
    for t, (a, b) in enumerate(zip(ours, official, strict=True)):
        assert np.array_equal(a, b), f"frame {t}"
    options = captured["predictor"]
    assert options["img_scale"] == settings.img_scale and options["size_divisor"] == settings.size_divisor
    assert options["normalization"] == settings.norm and options["mode"] == settings.mode
    assert captured["load"] == settings.model_kwargs


def test_segment_defaults_per_model(tmp_path, captured):
    write_video(tmp_path / "v", 48, 32, num=2)
    expected = {  # (img_scale, size_divisor, normalization, mode, short_video), from the official scripts
        "cffm_b0": ((853, 480), 32, "mmseg", "online", "clamp"),
        "segformer_b0": ((2048, 512), 32, "mmseg", "online", "clamp"),
        "tcb_ocr_mem_r101": (None, 1, "torchvision", "offline", "clamp"),  # segment: user videos clamp
        "pspnet_r101": (None, 1, "torchvision", "online", "clamp"),
    }
    for name, (scale, divisor, norm, mode, short) in expected.items():
        assert main(["segment", str(tmp_path / "v"), "--model", name, "--out", str(tmp_path / name), "--quiet"]) == 0
        o = captured["predictor"]
        assert (o["img_scale"], o["size_divisor"], o["mode"], o["short_video"]) == (scale, divisor, mode, short)
        assert o["normalization"] == NORMALIZATIONS[norm] and o["tta"] is None
        assert captured["load"] == ({"memory": "official"} if name == "tcb_ocr_mem_r101" else {})
    # overrides
    args = ["segment", str(tmp_path / "v"), "--model", "tcb_ocr_mem_r101", "--out", str(tmp_path / "o2"), "--quiet"]
    assert main([*args, "--short-video", "wrap", "--mode", "online", "--img-scale", "320x240"]) == 0
    o = captured["predictor"]
    assert (o["short_video"], o["mode"], o["img_scale"]) == ("wrap", "online", (320, 240))
    assert main(["segment", str(tmp_path / "v"), "--model", "cffm_b0", "--out", str(tmp_path / "o3"), "--quiet",
                 "--img-scale", "none", "--size-divisor", "1"]) == 0
    assert (captured["predictor"]["img_scale"], captured["predictor"]["size_divisor"]) == (None, 1)


def test_segment_tta_ratios_and_cffm_note(tmp_path, captured, capsys):
    write_video(tmp_path / "v", 48, 32, num=2)
    args = ["segment", str(tmp_path / "v"), "--out", str(tmp_path / "o"), "--quiet", "--tta",
            "--img-scale", "none", "--size-divisor", "1"]
    assert main([*args, "--model", "segformer_b0"]) == 0
    assert captured["predictor"]["tta"].scales == (0.75, 0.875, 1.0, 1.125, 1.25)  # ADE20K --aug-test
    assert "note" not in capsys.readouterr().out
    assert main([*args, "--model", "cffm_b0", "--out", str(tmp_path / "o2")]) == 0
    assert captured["predictor"]["tta"].scales == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # VSPW --aug-test
    assert "vidseg's multi-scale test" in capsys.readouterr().out


def test_segment_bad_test_options(tmp_path, capsys):
    write_video(tmp_path / "v", 48, 32, num=2)
    base = ["segment", str(tmp_path / "v"), "--model", "segformer_b0", "--out", str(tmp_path / "o"), "--quiet"]
    assert main([*base, "--img-scale", "big"]) == 2
    assert "--img-scale" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--size-divisor", "0"])
    assert "--size-divisor" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name,size_wh,num", [("cffm_b0", (854, 480), 4), ("segformer_b0", (633, 427), 1),
                                              ("tcb_ocr_mem_r101", (96, 64), 18)])
def test_segment_registered_models_reproduce_the_official_test(tmp_path, name, size_wh, num):
    """The registered models with random weights: ``vidseg segment --weights W`` (no test options) against the
    re-stated official pipeline with the same weights (TCB with the official memory rule)."""
    from vidseg.models import build, load_model
    from vidseg.models.checkpoint import save_weights

    torch.manual_seed(0)
    settings = vidseg.models.official_settings(name)
    model = build(name, num_classes=8, **settings.model_kwargs)
    save_weights(model, tmp_path / "w.safetensors")
    paths = write_video(tmp_path / "v", *size_wh, num=num)
    assert main(["segment", str(tmp_path / "v"), "--model", name, "--weights", str(tmp_path / "w.safetensors"),
                 "--num-classes", "8", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    reference = load_model(name, tmp_path / "w.safetensors", num_classes=8, **settings.model_kwargs)
    _, official = run_official(reference, paths, FAMILY[name], settings.img_scale, settings.size_divisor)
    for t, (a, b) in enumerate(zip(masks(tmp_path / "out" / "v"), official, strict=True)):
        assert (a != b).sum() == 0, f"frame {t}: {(a != b).sum()} pixels differ"
