"""The Clip-PanoFCN recipe: paper numbers, detectron2 solver semantics (norm decay, value clipping, WarmupPolyLR)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from vidseg.config import OptimConfig, ScheduleConfig, load_config
from vidseg.engine.optim import build_param_groups
from vidseg.engine.schedule import lr_at

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "configs" / "clip_panofcn_r50_vipseg.yaml"


def test_paper_numbers():
    cfg = load_config(RECIPE)
    o, s, d = cfg.optim, cfg.schedule, cfg.data
    assert (o.name, o.lr, o.momentum, o.weight_decay) == ("sgd", 5e-4, 0.9, 1e-4)
    assert (o.grad_clip, o.grad_clip_type, o.param_groups) == (35.0, "value", "detectron2")
    assert (s.max_iters, s.warmup_iters, s.warmup_ratio, s.power, s.min_lr) == (120000, 1000, 1e-3, 0.9, 0.0)
    assert (d.dataset, d.batch_size, d.crop_size, d.clip_length, d.max_size) == ("vipseg", 8, 608, 3, 4096)
    assert d.short_edges == (608, 748, 806, 864, 922, 980, 1036, 1094, 1152, 1206, 1267, 1324, 1382, 1440)
    assert cfg.model.name == "clip_panofcn_r50" and cfg.checkpoint_every == 10000


def _d2_warmup_poly(i: int, base: float, max_iters: int, warmup: int, factor: float, power: float) -> float:
    """detectron2 WarmupPolyLR.get_lr with _get_warmup_factor_at_iter('linear'), written out."""
    w = 1.0
    if i < warmup:
        alpha = i / warmup
        w = factor * (1 - alpha) + alpha
    return base * w * math.pow(1.0 - i / max_iters, power)


@pytest.mark.parametrize("i", [0, 1, 500, 999, 1000, 1001, 60000, 119999])
def test_schedule_equals_detectron2_warmup_poly(i):
    s = load_config(RECIPE).schedule
    want = _d2_warmup_poly(i, 5e-4, 120000, 1000, 1e-3, 0.9)
    assert lr_at(i, 5e-4, s) == pytest.approx(want, rel=1e-12)


def test_detectron2_groups_no_decay_on_norms():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.Conv2d(8, 4, 1))
    groups = build_param_groups(model, OptimConfig(name="sgd", lr=5e-4, weight_decay=1e-4,
                                                   param_groups="detectron2"))
    by_name = {n: g["weight_decay"] for g in groups for n in g["names"]}
    assert by_name == {"0.weight": 1e-4, "0.bias": 1e-4, "1.weight": 0.0, "1.bias": 0.0,
                       "2.weight": 1e-4, "2.bias": 1e-4}
    assert all(g["lr"] == 5e-4 for g in groups)


def test_grad_clip_by_value_in_trainer(tmp_path):
    """One SGD step (lr 1, no momentum/decay) moves each weight by its gradient clipped to [-35, 35]."""
    from vidseg.config import TrainConfig
    from vidseg.engine.trainer import Trainer
    from vidseg.structures import Clip

    class Lin(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 1, bias=False)
            with torch.no_grad():
                self.fc.weight.zero_()

        def forward(self, frames):
            return frames

        def losses(self, outputs, labels):
            x = outputs.mean(dim=(0, 1, 3, 4))  # [3]: 1, 100, -1000 per channel
            return {"lin": (self.fc.weight[0] * x).sum() * 1.0}

    frames = torch.ones(1, 3, 2, 2) * torch.tensor([1.0, 100.0, -1000.0]).view(1, 3, 1, 1)
    data = [Clip(frames=frames, labels=torch.zeros(1, 2, 2, dtype=torch.long))]
    cfg = TrainConfig(device="cpu")
    cfg.optim = OptimConfig(name="sgd", lr=1.0, momentum=0.0, weight_decay=0.0, grad_clip=35.0,
                            grad_clip_type="value")
    cfg.schedule = ScheduleConfig(max_iters=1, warmup_iters=0, power=1.0)
    cfg.data.batch_size, cfg.data.num_workers = 1, 0
    cfg.checkpoint_every, cfg.eval_every = 0, -1
    model = Lin()
    trainer = Trainer(cfg, model, data, out_dir=tmp_path)
    trainer.fit()
    assert model.fc.weight.detach().flatten().tolist() == pytest.approx([-1.0, -35.0, 35.0])


@pytest.mark.slow
def test_panoptic_training_resumes_exactly(tmp_path):
    """Tiny Clip-PanoFCN on synthetic VIPSeg: 4 steps straight == 2 steps, stop, resume, 2 more (bit-identical)."""
    from vidseg.data.synth import generate
    from vidseg.engine.run import train
    from vidseg.models.checkpoint import read_state_dict

    root = tmp_path / "vipseg"
    generate("vipseg", root, videos=2, frames=5, size=(64, 96), seed=0, val_fraction=0.0, overwrite=True,
             progress=False)
    tiny = ("{blocks: [1, 1, 1, 1], width: 16, fpn_channels: 64, semantic_channels: 64, head_channels: 64, "
            "encoder_channels: 32, gn_groups: 8, freeze_at: 0}")
    over = ["device=cpu", "deterministic=true", f"data.root={root}", "data.crop_size=64", "data.short_edges=[64, 96]",
            "data.batch_size=2", "data.num_workers=0", f"model.kwargs={tiny}", "schedule.max_iters=4",
            "schedule.warmup_iters=2", "checkpoint_every=0", "eval_every=-1", "log_every=1"]
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(load_config(RECIPE, over), tmp_path / "straight")
        from vidseg.engine import build
        from vidseg.engine.trainer import Trainer, seed_everything

        cfg = load_config(RECIPE, over)
        seed_everything(cfg.seed)
        model = build.build_model(cfg)
        part = Trainer(cfg, model, build.build_train_dataset(cfg, model, tmp_path / "parts"),
                       out_dir=tmp_path / "parts")
        assert part.fit(until=2).interrupted
        resumed = train(load_config(RECIPE, over), tmp_path / "parts", resume=True)
    finally:
        torch.set_num_threads(n)
    assert [i for i, _ in resumed.history] == [3, 4]  # it really continued from step 2
    a = read_state_dict(tmp_path / "straight" / "model_final.pt")
    b = read_state_dict(tmp_path / "parts" / "model_final.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_panoptic_recipe_trains_under_torchrun(tmp_path):
    """Two gloo processes: the kernel generators run in ``losses``, so the trainer must give DDP the losses
    inside its forward (``LossForward``); before that, DDP stopped with "mark a variable ready only once"."""
    import os
    import subprocess
    import sys

    tiny = ("model.kwargs={blocks: [1, 1, 1, 1], width: 16, fpn_channels: 64, semantic_channels: 64, "
            "head_channels: 64, encoder_channels: 32, gn_groups: 8, freeze_at: 0}")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vidseg",
           "train", str(RECIPE), "--set", "smoke=true", "--set", "eval_every=-1", "--set", tiny,
           "--out", str(tmp_path / "ddp")]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "ddp" / "model_final.pt").is_file()
