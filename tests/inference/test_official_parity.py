"""vidseg's full test path vs an independent re-statement of each official test pipeline.

Frames of 853x480, 854x480, 633x427 and 1024x436 (JPEG frame folders) and an EXIF-rotated JPEG video go
through :class:`vidseg.inference.VideoPredictor` with each family's official settings
(:mod:`vidseg.inference.settings`) and through ``tests/official_restatement.py`` (cv2 decode, two cv2 INTER_LINEAR
resizes, mmcv / torchvision normalisation, the official clip rules, logits resized to the frame, argmax), with
the same small model. The model inputs must be identical tensors (``torch.equal``) and the masks identical.
The model is a small conv net implementing the VideoSegmenter protocol (the real models' equality with the
official modules is tested in tests/models); tests marked slow repeat this with the registered models.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from toy_segmenter import ToySegmenter

from official_restatement import run_official, write_video
from vidseg.inference import VideoPredictor
from vidseg.inference.settings import CFFM_TEST, SEGFORMER_ADE_TEST, TCB_TEST
from vidseg.inference.settings import InferenceSettings as Settings

SIZES_WH = [(853, 480), (854, 480), (633, 427), (1024, 436)]
FAMILIES = {"cffm": CFFM_TEST, "segformer": SEGFORMER_ADE_TEST, "tcb": TCB_TEST}
# frames per video: CFFM 10 reaches every branch of its rule (t < 3, 3..8, >= 9), TCB 10 its future, past and
# wrapped supports
NUM_FRAMES = {"cffm": 10, "segformer": 3, "tcb": 10}


def toy_model(family: str) -> ToySegmenter:
    if family == "cffm":
        return ToySegmenter(num_classes=3, width=4, cffm_like=True, seed=1)
    if family == "tcb":
        return ToySegmenter(num_classes=3, width=4, offline_support_offsets=(3, 6, 9), stateful=True, seed=2)
    return ToySegmenter(num_classes=3, width=4, support_offsets=(), seed=3)


def vidseg_run(model: ToySegmenter, folder: Path, settings: Settings
               ) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """The model inputs (in encode order) and masks of vidseg's streaming test path."""
    inputs: list[torch.Tensor] = []
    encode = model.encode_frame

    def recording(x: torch.Tensor):
        inputs.append(x[0].clone())
        return encode(x)

    model.encode_frame = recording
    try:
        predictor = VideoPredictor(model, **settings.predictor_options())
        masks = [p.labels for p in predictor.predict(folder)]
    finally:
        del model.encode_frame
    return inputs, masks


def assert_same(official: tuple[dict[int, torch.Tensor], list[np.ndarray]],
                ours: tuple[list[torch.Tensor], list[np.ndarray]]) -> None:
    ref_inputs, ref_masks = official
    our_inputs, our_masks = ours
    assert len(our_inputs) == len(ref_inputs)  # every frame encoded once
    for i, ref in ref_inputs.items():
        assert any(x.shape == ref.shape and torch.equal(x, ref) for x in our_inputs), f"input of frame {i} differs"
    assert len(our_masks) == len(ref_masks)
    for t, (a, b) in enumerate(zip(our_masks, ref_masks, strict=True)):
        assert a.shape == b.shape and np.array_equal(a, b), f"frame {t}: {(a != b).sum()} pixels differ"


# The default suite runs SegFormer's pipeline at every size and CFFM's / TCB's at one size each (their 10-frame
# videos take ~4 s of CPU per size); -m slow runs the rest of the matrix.
DEFAULT_CASES = {("segformer", s) for s in SIZES_WH} | {("cffm", (854, 480)), ("tcb", (633, 427))}
CASES = [pytest.param(f, s, marks=() if (f, s) in DEFAULT_CASES else pytest.mark.slow, id=f"{f}-{s[0]}x{s[1]}")
         for f in sorted(FAMILIES) for s in SIZES_WH]


@pytest.mark.parametrize("family,size_wh", CASES)
def test_official_pipeline_parity(tmp_path: Path, family: str, size_wh: tuple[int, int]):
    settings = FAMILIES[family]
    paths = write_video(tmp_path / "v", *size_wh, num=NUM_FRAMES[family])
    model = toy_model(family)
    official = run_official(model, paths, family, settings.img_scale, settings.size_divisor)
    assert_same(official, vidseg_run(model, tmp_path / "v", settings))
    if family != "tcb":  # the official input is the aligned two-step resize, e.g. 854x480 -> 864x480
        h, w = next(iter(official[0].values())).shape[-2:]
        assert h % 32 == 0 and w % 32 == 0


@pytest.mark.parametrize("family", [pytest.param("cffm", marks=pytest.mark.slow), "segformer"])
def test_official_parity_exif_rotated_jpeg(tmp_path: Path, family: str):
    """Frames stored landscape 640x360 with EXIF orientation 6 are portrait 360x640 for OpenCV and for us."""
    paths = write_video(tmp_path / "v", 640, 360, num=10, orientation=6)
    assert cv2.imread(str(paths[0])).shape[:2] == (640, 360)
    settings = FAMILIES[family]
    model = toy_model(family)
    official = run_official(model, paths, family, settings.img_scale, settings.size_divisor)
    ours = vidseg_run(model, tmp_path / "v", settings)
    assert_same(official, ours)
    assert ours[1][0].shape == (640, 360)


def test_tcb_short_video_official_wrap_rule(tmp_path: Path):
    """10 frames: TCB's official loader wraps negative supports to the end of the video; vidseg with
    short_video='wrap' gives the same masks, the clamped rule does not see the same clips."""
    paths = write_video(tmp_path / "v", 96, 64, num=10)
    model = toy_model("tcb")
    official = run_official(model, paths, "tcb")
    assert_same(official, vidseg_run(model, tmp_path / "v", TCB_TEST))
    clamp = TCB_TEST.with_overrides(short_video="clamp")
    clips = [p.clip for p in VideoPredictor(model, **clamp.predictor_options()).predict(tmp_path / "v")]
    wrapped = [p.clip for p in VideoPredictor(model, **TCB_TEST.predictor_options()).predict(tmp_path / "v")]
    assert clips[0] == wrapped[0] == (3, 6, 9, 0)  # 0 + 9 < 10: future supports
    assert clips[1] == (0, 0, 0, 1) and wrapped[1] == (8, 5, 2, 1)  # 1 - 3 = -2 -> frame 8


def test_tcb_wrap_rule_refuses_videos_the_official_loader_cannot_read(tmp_path: Path):
    from vidseg.errors import DataError

    write_video(tmp_path / "v", 96, 64, num=8)
    with pytest.raises(DataError, match="at least 9 frames"):
        list(VideoPredictor(toy_model("tcb"), **TCB_TEST.predictor_options()).predict(tmp_path / "v"))
    clamp = TCB_TEST.with_overrides(short_video="clamp")
    assert len(list(VideoPredictor(toy_model("tcb"), **clamp.predictor_options()).predict(tmp_path / "v"))) == 8


def test_tta_equals_the_official_aug_test(tmp_path: Path):
    """``--tta`` on SegFormer (ADE20K ratios 0.75-1.25 + flip at 2048x512/32) against mmseg's aug_test."""
    from official_restatement import run_official_aug_test

    paths = write_video(tmp_path / "v", 96, 64, num=1)
    model = toy_model("segformer")
    settings = SEGFORMER_ADE_TEST
    ref = run_official_aug_test(model, paths[0], settings.img_scale, settings.size_divisor,
                                (0.75, 0.875, 1.0, 1.125, 1.25))
    predictor = VideoPredictor(model, return_probs=True, **settings.predictor_options(tta=True))
    (pred,) = list(predictor.predict(tmp_path / "v"))
    assert len(predictor.variants) == 10
    assert torch.allclose(pred.probs, ref, atol=1e-6)
    assert np.array_equal(pred.labels, ref.argmax(0).numpy())
