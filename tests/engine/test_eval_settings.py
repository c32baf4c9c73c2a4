"""Training-time evaluation runs the entry's official test settings, the same path as ``vidseg predict``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import vidseg.engine.build as build_mod
from vidseg.config import TrainConfig
from vidseg.engine.build import (
    apply_smoke,
    build_model,
    eval_settings,
    evaluate_videos,
    make_evaluate_fn,
    val_videos,
)
from vidseg.inference.settings import CFFM_TEST, SEGFORMER_VSPW_TEST, TCB_TEST, training_eval_settings
from vidseg.models import make_predictor, official_settings


def _cfg(name: str, **kwargs) -> TrainConfig:
    cfg = TrainConfig(name=name, seed=0, smoke=True)
    cfg.model.name, cfg.model.kwargs = name, kwargs
    return apply_smoke(cfg)


def test_shipped_recipe_scale_is_the_official_test_scale():
    full = TrainConfig()  # data.base_size (853, 480): every shipped VSPW recipe
    for name, official in (("cffm_b0", CFFM_TEST), ("segformer_b0", SEGFORMER_VSPW_TEST)):
        full.model.name = name
        s = eval_settings(full)
        assert (s.img_scale, s.size_divisor, s.normalization, s.mode) == \
            (official.img_scale, official.size_divisor, official.normalization, official.mode), name
    full.model.name = "tcb_ocr_mem_r101"
    assert eval_settings(full) == official_settings("tcb_ocr_mem_r101")  # native size, offline, wrap
    # a smoke/demo scale shrinks the test scale with training (order-free keep-ratio bound)
    assert training_eval_settings(CFFM_TEST, (96, 64)).img_scale == (96, 64)
    assert training_eval_settings(CFFM_TEST, (64, 96)).img_scale == (96, 64)
    assert training_eval_settings(TCB_TEST, (96, 64)) == TCB_TEST


@pytest.mark.parametrize("name,kwargs", [("tcb_ppm_b0", {"channels": 16, "aux_channels": 8}),
                                         ("cffm_b0", {"embed_dim": 32})])
def test_training_evaluation_passes_the_official_options(tmp_path: Path, monkeypatch, name, kwargs):
    cfg = _cfg(name, **kwargs)
    seen = {}
    real = build_mod.make_predictor

    def spy(model_name, model, **options):
        seen["name"], seen["options"] = model_name, options
        return real(model_name, model, **options)

    monkeypatch.setattr(build_mod, "make_predictor", spy)
    torch.manual_seed(0)
    metrics = make_evaluate_fn(cfg, tmp_path)(build_model(cfg).eval(), torch.device("cpu"))
    assert 0.0 <= metrics["mIoU"] <= 1.0
    official = official_settings(name)
    expected = {**official.predictor_options(), "device": torch.device("cpu")}
    if official.img_scale is not None:  # smoke: the training scale (96x64) instead of 853x480
        expected["img_scale"] = (96, 64)
    assert seen == {"name": name, "options": expected}
    assert (seen["options"]["mode"], seen["options"]["normalization"]) == (official.mode, official.norm)


def test_training_evaluation_predictions_equal_the_predict_path(tmp_path: Path):
    """TCB: the masks scored in training are the official offline ones, not the online default."""
    cfg = _cfg("tcb_ppm_b0", channels=16, aux_channels=8)
    videos = val_videos(cfg, tmp_path)[:1]
    torch.manual_seed(1)
    model = build_model(cfg).eval()
    _, kept = evaluate_videos(model, videos, "cpu", name=cfg.model.name, settings=eval_settings(cfg),
                              keep_predictions=True)
    video = videos[0]
    frames = [video.load_frame(i) for i in range(len(video))]
    official = make_predictor("tcb_ppm_b0", model, **TCB_TEST.predictor_options())
    want = [p.labels for p in official.predict(frames)]
    assert all(np.array_equal(a, b) for a, b in zip(kept[video.name], want, strict=True))
    default = [p.labels for p in make_predictor("tcb_ppm_b0", model).predict(frames)]  # the old path
    assert not all(np.array_equal(a, b) for a, b in zip(want, default, strict=True))
