"""Clip-PanoFCN learns on synthetic VIPSeg data through the engine (recipe + overrides), and the recipe's smoke run.

The integration run: a tiny Clip-PanoFCN (ResNet (1,1,1,1) width 16, 64-wide heads) trained by
``vidseg.engine.run.train`` from ``configs/clip_panofcn_r50_vipseg.yaml`` with CPU-sized overrides (AdamW 2e-3
instead of SGD 5e-4, 64x64 crops of 64x96 frames, 2 clips per step, STEPS steps) on 3 synthetic VIPSeg videos of
8 frames (3 stuff classes, 1-2 cars), evaluated on the same videos. Seed 0, one torch thread. Measured on this
CPU (2m50s): untrained VPQ 0.0 (SQ 0.002); after 200 steps VPQ 0.116 (stuff 0.155; things 0: no car is yet
detected above the merge threshold), SQ 0.113. The test asks for a VPQ at least MARGIN (0.05) above the untrained
model's, and a higher stuff VPQ.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidseg.config import load_config
from vidseg.data.synth import SynthConfig, generate
from vidseg.data.vipseg_train import vipseg_videos
from vidseg.engine.build import build_model
from vidseg.engine.panoptic import evaluate_panoptic_videos
from vidseg.engine.run import train
from vidseg.engine.trainer import seed_everything

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "configs" / "clip_panofcn_r50_vipseg.yaml"
SEED = 0
STEPS = 200
MARGIN = 0.05  # VPQ (fraction) above the untrained model's
TINY = ("{blocks: [1, 1, 1, 1], width: 16, fpn_channels: 64, semantic_channels: 64, head_channels: 64, "
        "encoder_channels: 32, gn_groups: 8, freeze_at: 0}")
SIMPLE = SynthConfig(stuff=("sky", "grass", "road"), things=("car",), objects=(1, 2), degrade_prob=0.0,
                     others_prob=0.0, void_prob=0.0, blob_prob=0.0)


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions on a shared 2-core machine: threads only add contention
    yield
    torch.set_num_threads(n)


def _config(root: Path, steps: int):
    return load_config(RECIPE, [
        f"seed={SEED}", "device=cpu", f"data.root={root}", "data.val_split=train", "data.crop_size=64",
        "data.short_edges=[64]", "data.batch_size=2", "data.num_workers=0", f"model.kwargs={TINY}",
        "optim.name=adamw", "optim.lr=2e-3", f"schedule.max_iters={steps}", "schedule.warmup_iters=0",
        "checkpoint_every=0", "keep_checkpoints=0", "eval_every=0", "log_every=50",
    ])


@pytest.mark.slow
def test_clip_panofcn_learns_on_synthetic_vipseg(tmp_path, one_thread):
    root = tmp_path / "vipseg"
    generate("vipseg", root, videos=3, frames=8, size=(64, 96), seed=SEED, config=SIMPLE, val_fraction=0.0,
             overwrite=True, progress=False)
    cfg = _config(root, STEPS)
    seed_everything(cfg.seed)
    untrained = evaluate_panoptic_videos(build_model(cfg), vipseg_videos(root, "train"))
    result = train(cfg, tmp_path / "run")
    assert result.iteration == STEPS
    trained = result.metrics
    print("untrained", untrained, "trained", trained)
    assert trained["VPQ"] >= untrained["VPQ"] + MARGIN, (untrained, trained)
    assert trained["VPQ_stuff"] > untrained["VPQ_stuff"]


@pytest.mark.slow
def test_recipe_smoke_trains(tmp_path, one_thread):
    """The R50 recipe itself (full width) for 2 steps on generated synthetic VIPSeg data."""
    cfg = load_config(RECIPE, ["smoke=true", "eval_every=-1"])
    res = train(cfg, tmp_path / "smoke")
    assert res.iteration == 2 and all(torch.isfinite(torch.tensor(loss)) for _, loss in res.history)
    assert (tmp_path / "smoke" / "model_final.pt").is_file()
