"""Panoptic (Clip-PanoFCN, PanopticFCN) and object (STCNN) entries: what the registry's official test settings say
is what their predictors feed the model (native size, the stated normalisation), and ``vidseg models`` prints it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidseg.cli.main import main
from vidseg.data import vipseg_train
from vidseg.engine import stcnn_stages
from vidseg.models import get_entry, make_predictor, official_settings
from vidseg.models.panoptic.clip_panofcn import PIXEL_MEAN, PIXEL_STD, build_tiny_clip_panofcn
from vidseg.models.registry import MODELS
from vidseg.models.vos.stcnn import build_stcnn

PANOPTIC = sorted(n for n, e in MODELS.items() if e.task == "panoptic")
OBJECT = sorted(n for n, e in MODELS.items() if e.task == "object")
# what each official test does (specs/models.md §4.4 and §5.7), written out independently of the settings module:
# (normalisation name, mean, std, input scale, mode)
D2 = ((123.675, 116.28, 103.53), (1.0, 1.0, 1.0), 1.0)
TV = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 255.0)
EXPECTED = {"clip_panofcn_r50": ("detectron2", *D2, "offline"), "clip_panofcn_tiny": ("detectron2", *D2, "offline"),
            "panofcn_r50": ("detectron2", *D2, "online"),
            "stcnn_r101": ("torchvision", *TV, "online"), "stcnn_small": ("torchvision", *TV, "online")}


def _frames(n: int, h: int = 40, w: int = 56, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _normalised(frame: np.ndarray, mean, std, scale) -> np.ndarray:
    """[3, H, W] float64: ``(x / scale - mean) / std``."""
    x = frame.astype(np.float64) / scale
    return ((x - np.asarray(mean)) / np.asarray(std)).transpose(2, 0, 1)


def test_every_panoptic_and_object_entry_states_its_own_settings():
    assert set(EXPECTED) == set(PANOPTIC) | set(OBJECT)
    for name, (norm, mean, std, scale, mode) in EXPECTED.items():
        s = official_settings(name)
        assert get_entry(name).test != "vidseg.inference.settings:PLAIN_TEST", name
        assert (s.img_scale, s.size_divisor, s.normalization, s.mode) == (None, 1, norm, mode), name
        assert (s.norm.mean, s.norm.std, s.norm.input_scale) == (mean, std, scale), name
        assert not s.official_tta and s.model_kwargs == {}, name
    # the training pipelines normalise the same way (one normalisation per family)
    assert official_settings("clip_panofcn_r50").norm.mean == PIXEL_MEAN == vipseg_train.PIXEL_MEAN
    assert official_settings("clip_panofcn_r50").norm.std == PIXEL_STD == vipseg_train.PIXEL_STD
    assert (official_settings("stcnn_small").norm.mean, official_settings("stcnn_small").norm.std) == \
        (stcnn_stages.IMAGENET_MEAN, stcnn_stages.IMAGENET_STD)


@pytest.mark.parametrize("name", PANOPTIC)
def test_panoptic_predictor_feeds_what_the_settings_say(name):
    torch.manual_seed(0)
    model = build_tiny_clip_panofcn().eval()  # the entry's predictor class around the small network
    seen: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    frames = _frames(4)
    list(make_predictor(name, model).predict(frames))
    s = official_settings(name)
    got = torch.cat([x[0] for x in seen]).double().numpy()  # [T, 3, H, W] at the native size
    want = np.stack([_normalised(f, s.norm.mean, s.norm.std, s.norm.input_scale) for f in frames])
    assert got.shape == want.shape == (4, 3, 40, 56)
    np.testing.assert_allclose(got, want, atol=1e-4)
    clip = max(x.shape[1] for x in seen)  # offline: a frame sees the later frames of its clip
    assert (clip > 1) == (s.mode == "offline")


@pytest.mark.parametrize("name", OBJECT)
def test_object_predictor_feeds_what_the_settings_say(name):
    torch.manual_seed(0)
    model = build_stcnn(frame_nums=3, layers=(1, 1, 1, 1), width=8, fpn_dim=16, ppm_dim=16).eval()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    model.register_forward_pre_hook(lambda _m, args: seen.append((args[0].clone(), args[1].clone())))
    frames = _frames(4, 48, 64, seed=1)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 10:40] = 1
    list(make_predictor(name, model).stream(frames, mask))
    s = official_settings(name)
    for t, (stack, frame) in enumerate(seen):
        np.testing.assert_allclose(frame[0].double().numpy(),
                                   _normalised(frames[t], s.norm.mean, s.norm.std, s.norm.input_scale), atol=1e-5)
        # the temporal input (previous frames, official table) is x / 127.5 - 1 whatever the settings say
        prev = [frames[i] for i in ([0, 0, 0], [0, 0, 1], [0, 1, 2], [0, 1, 2])[t]]
        want = np.concatenate([f.astype(np.float64) / 127.5 - 1 for f in prev], axis=2).transpose(2, 0, 1)
        np.testing.assert_allclose(stack[0].double().numpy(), want, atol=1e-6)
    assert len(seen) == 4


def test_models_cli_prints_the_task_settings(capsys):
    for task, names in (("video-panoptic", PANOPTIC), ("video-object", OBJECT)):
        assert main(["models", "--json", "--task", task]) == 0
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
        assert sorted(rows) == names
        for name in names:
            assert rows[name]["test"] == official_settings(name).to_dict()
    assert main(["models", "--task", "video-panoptic", "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "native detectron2 offline" in table and "native detectron2 online" in table
    assert main(["models", "--task", "video-object", "--quiet"]) == 0
    assert "native torchvision online" in capsys.readouterr().out
