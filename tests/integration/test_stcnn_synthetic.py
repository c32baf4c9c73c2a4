"""STCNN learns on synthetic DAVIS: a tiny model after a short joint training against the untrained model and
against copying the first-frame mask (J&F with the DAVIS evaluator, streaming with the STCNN VOS predictor).

Setup (seed 0): `vidseg synth davis`-style data, 8 videos of 12 frames at 64x96 (6 train, 2 val); STCNN with
one block per ResNet stage, width 8, FPN/PPM 16 channels, delta 3, the small discriminator; the spatial
branch re-initialised and its frozen BN statistics calibrated on one batch (no ImageNet weights); joint stage
(BCE(fused) + decaying side BCE, G/D with the margin rule) with SGD lr 0.02 instead of 1e-4 (a short run),
batch 4, clips resized to 64x96 with the official flip/scale/rotate. Gating dilation 11 px (80 px at 480p
scaled to 64 px height).

Measured (2-core CPU under load, ~0.35 s/step, 3 min): copy-first-mask 0.483, untrained 0.093, trained 0.289
(0.184 after 300 steps; 0.309 after 600 with another calibration batch). The trained model is clearly above the
untrained one (asserted: +0.1) but NOT yet above copying the first mask at this budget: the objects of the
val videos differ from the 6 training videos and the tiny network (0.6 M parameters) generalises little.
Per-video online fine-tuning on lucid dreams (20 pairs x 3 epochs, lr 5e-3) did not help here (0.21 -> 0.15).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidseg.data.davis import scan_davis
from vidseg.data.stcnn_data import JointClips
from vidseg.data.synth import generate
from vidseg.engine.stcnn_stages import (
    JointStage,
    StcnnStepHook,
    calibrate_frozen_bn,
    imagenet_frame,
    run_step,
    temporal_stack,
)
from vidseg.inference.vos import StcnnVosPredictor
from vidseg.metrics.davis_folder import DAVISEvaluator
from vidseg.models.vos.discriminator import build_discriminator
from vidseg.models.vos.stcnn import build_stcnn
from vidseg.structures import ClipBatch

DELTA, SIZE, STEPS, LR = 3, (64, 96), 500, 0.02
pytestmark = pytest.mark.slow


def _jf(videos: list, segment) -> float:
    ev = DAVISEvaluator(binary=True)
    for v in videos:
        gts = [v.load_label(i) for i in range(len(v))]
        ev.process(v.name, gts, segment(v, gts))
    return float(ev.evaluate()["J&F-Mean"])


def _stcnn_segment(model: torch.nn.Module):
    def segment(video, gts):
        frames = [video.load_frame(i) for i in range(len(video))]
        predictor = StcnnVosPredictor(model, dilation=11)
        return [out.mask for out in predictor.stream(frames, (gts[0] == 1).astype(np.uint8))]
    return segment


def test_joint_training_beats_untrained_and_copy(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    root = tmp_path / "davis"
    generate("davis", root, videos=8, frames=12, size=SIZE, seed=0, val_fraction=0.25, progress=False)
    train, _ = scan_davis(root, 2016, "train")
    val, _ = scan_davis(root, 2016, "val")
    torch.manual_seed(0)
    model = build_stcnn(frame_nums=DELTA, layers=(1, 1, 1, 1), width=8, fpn_dim=16, ppm_dim=16)
    plain = JointClips(train, DELTA, SIZE, augment=False)
    calib = ClipBatch.collate([plain.get(i, np.random.default_rng(i)) for i in range(0, len(plain), 4)])
    calibrate_frozen_bn(model, temporal_stack(calib.frames[:, :-1]), imagenet_frame(calib.frames[:, -1]),
                        reinit=True)
    copy_jf = _jf(val, lambda v, gts: [gts[0]] * len(gts))
    untrained_jf = _jf(val, _stcnn_segment(model))

    stage = JointStage(model=model, discriminator=build_discriminator("small", width=4))
    hook = StcnnStepHook("joint", lr=LR, weight_decay=5e-4, lr_g=1e-4, lr_d=1e-4, gan_weight_decay=5e-4,
                         update_g_at_start=False)
    optimizers = hook.build_optimizers(stage)
    data = JointClips(train, DELTA, SIZE)
    rng = np.random.default_rng(0)
    stage.train()
    for it in range(STEPS):
        batch = ClipBatch.collate([data.get(int(i), rng) for i in rng.integers(0, len(data), 4)])
        scalars = run_step(stage, optimizers, hook, batch.frames, batch.labels, it, STEPS)
        assert np.isfinite(scalars["loss/bce_fused"])
    trained_jf = _jf(val, _stcnn_segment(model))
    print(f"J&F copy {copy_jf:.3f} untrained {untrained_jf:.3f} trained {trained_jf:.3f}")
    assert trained_jf > untrained_jf + 0.1
