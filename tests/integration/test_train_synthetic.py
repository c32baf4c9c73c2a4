"""Short training run with an expected metric: a small SegFormer learns the synthetic scenes.

The bar is relative to chance measured on the same validation frames: the mIoU of predicting their most frequent
class everywhere (an oracle-informed constant; a model that learnt nothing gets about that, or less).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidseg.config import load_config
from vidseg.engine.build import val_videos
from vidseg.engine.run import train
from vidseg.metrics.vspw import VSPWEvaluator


def _chance_miou(cfg, out: Path) -> float:
    counts = np.zeros(256, np.int64)
    for video in val_videos(cfg, out):
        for i in range(len(video)):
            counts += np.bincount(video.load_label(i).ravel(), minlength=256)
    counts[255] = 0
    majority = int(counts.argmax())
    ev = VSPWEvaluator(vc_lengths=())
    for video in val_videos(cfg, out):
        for i in range(len(video)):
            gt = video.load_raw_mask(i)
            ev.process(gt, np.full(gt.shape, majority, np.uint8), video=video.name)
    return float(ev.evaluate()["mIoU"])


def test_small_segformer_learns_synthetic_scenes(tmp_path: Path) -> None:
    cfg = load_config(None, [
        "name=integration", "model.name=segformer_b0", "model.kwargs={embed_dim: 32, drop_path_rate: 0.0}",
        "device=cpu", "data.dataset=synthetic", "data.synthetic_videos=4", "data.synthetic_frames=8",
        "data.synthetic_size=[64, 48]", "data.crop_size=48", "data.base_size=[64, 48]", "data.scale_range=[0.9, 1.2]",
        "data.batch_size=4", "data.num_workers=0", "optim.lr=3e-3", "optim.param_groups=cffm", "optim.head_lr_mult=1",
        "schedule.max_iters=60", "schedule.warmup_iters=5", "checkpoint_every=0", "eval_every=0", "log_every=10",
    ])
    result = train(cfg, tmp_path)
    chance = _chance_miou(cfg, tmp_path)
    miou = result.metrics["mIoU"]
    print(f"mIoU {miou:.3f} chance {chance:.3f}")
    assert miou > 2 * chance and miou > 0.15, (miou, chance)
    losses = [loss for _, loss in result.history]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])
