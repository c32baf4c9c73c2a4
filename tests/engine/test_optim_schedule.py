"""Parameter groups (mmcv first-match outcome for CFFM, TCB groups) and the poly + warm-up schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vidseg.config import OptimConfig, ScheduleConfig
from vidseg.engine.optim import build_optimizer, build_param_groups
from vidseg.engine.schedule import PolyWarmupSchedule, lr_at
from vidseg.errors import ConfigError


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1))
        self.backbone.add_module("norm1", nn.LayerNorm(4))
        self.decode_head = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def _by_name(groups: list[dict]) -> dict[str, tuple[float, float]]:
    return {n: (g["lr_mult"], g["decay_mult"]) for g in groups for n in g["names"]}


def test_cffm_groups_follow_mmcv_first_match() -> None:
    got = _by_name(build_param_groups(Net(), OptimConfig(param_groups="cffm", head_lr_mult=10)))
    # every decode-head parameter, its BatchNorm included, gets lr x10 and keeps weight decay
    assert got["decode_head.1.weight"] == (10.0, 1.0) and got["decode_head.0.bias"] == (10.0, 1.0)
    # backbone norms: no decay; other backbone params: defaults (biases keep decay as in mmcv)
    assert got["backbone.1.weight"] == (1.0, 0.0) and got["backbone.norm1.bias"] == (1.0, 0.0)
    assert got["backbone.0.weight"] == (1.0, 1.0) and got["backbone.0.bias"] == (1.0, 1.0)


def test_tcb_groups_encoder_lr_and_bias_decay() -> None:
    model = Net()
    model.encoder = model.backbone
    del model.backbone
    got = _by_name(build_param_groups(model, OptimConfig(name="sgd", param_groups="tcb", encoder_lr_mult=0.1)))
    assert got["encoder.0.weight"] == (0.1, 1.0) and got["encoder.0.bias"] == (0.1, 0.0)
    assert got["encoder.1.weight"] == (0.1, 1.0)  # BN weights keep decay, as in the official groups
    assert got["decode_head.2.bias"] == (1.0, 0.0) and got["decode_head.2.weight"] == (1.0, 1.0)


def test_each_parameter_exactly_once_and_optimizer_lrs() -> None:
    model = Net()
    opt = build_optimizer(model, OptimConfig(name="adamw", lr=6e-5, weight_decay=0.01, param_groups="cffm"))
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    lrs = {(round(g["lr"], 12), g["weight_decay"]) for g in opt.param_groups}
    assert lrs == {(6e-4, 0.01), (6e-5, 0.0), (6e-5, 0.01)}


def test_groups_need_a_backbone() -> None:
    with pytest.raises(ConfigError, match="backbone"):
        build_param_groups(nn.Linear(2, 2), OptimConfig(param_groups="cffm"))


def test_schedule_matches_mmcv_formula() -> None:
    cfg = ScheduleConfig(max_iters=100, warmup_iters=10, warmup_ratio=1e-6, power=1.0)
    base = 6e-5
    assert lr_at(0, base, cfg) == pytest.approx(base * 1e-6)
    # i=5: regular = base * 0.95; k = 0.5 * (1 - 1e-6)
    assert lr_at(5, base, cfg) == pytest.approx(base * 0.95 * (1 - 0.5 * (1 - 1e-6)))
    assert lr_at(10, base, cfg) == pytest.approx(base * 0.9)
    tcb = ScheduleConfig(max_iters=100, warmup_iters=0, power=0.9)
    assert lr_at(50, 2e-3, tcb) == pytest.approx(2e-3 * 0.5 ** 0.9)
    assert lr_at(100, 2e-3, tcb) == 0.0


def test_scheduler_drives_every_group() -> None:
    p1, p2 = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p1], "lr": 1.0}, {"params": [p2], "lr": 0.1}], lr=1.0)
    cfg = ScheduleConfig(max_iters=20, warmup_iters=4, power=0.9)
    sched = PolyWarmupSchedule(opt, cfg)
    for i in range(20):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(i, 1.0, cfg))
        assert opt.param_groups[1]["lr"] == pytest.approx(lr_at(i, 0.1, cfg))
        opt.step()
        sched.step()
    assert math.isclose(opt.param_groups[0]["lr"], 0.0, abs_tol=1e-12)
