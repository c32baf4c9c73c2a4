"""The four STCNN recipes through the engine: smoke runs, exact resume with the GAN step hook, bad recipes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidseg.config import load_config
from vidseg.engine.distributed import init_distributed
from vidseg.engine.run import train
from vidseg.engine.stcnn_build import (
    apply_stcnn_smoke,
    build_stage_dataset,
    build_stage_module,
    build_step_hook,
)
from vidseg.engine.trainer import Trainer, seed_everything
from vidseg.errors import ConfigError
from vidseg.models.checkpoint import read_state_dict

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPES = ("stcnn_framepred", "stcnn_segbranch", "stcnn_joint_davis16", "stcnn_online")


def test_recipes_state_the_official_hyperparameters() -> None:
    fp = load_config(CONFIGS / "stcnn_framepred.yaml")
    assert (fp.optim.name, fp.optim.lr, fp.optim.weight_decay) == ("adam", 1e-7, 2e-4)
    assert (fp.stcnn.lr_d, fp.stcnn.gan_weight_decay, fp.stcnn.beta, fp.stcnn.margin) == (1e-4, 2e-4, 1e-3, 0.3)
    assert fp.stcnn.update_g_at_start and fp.data.batch_size == 3 and tuple(fp.stcnn.input_size) == (480, 854)
    sb = load_config(CONFIGS / "stcnn_segbranch.yaml")
    assert (sb.optim.name, sb.optim.lr, sb.optim.weight_decay, sb.optim.momentum) == ("sgd", 1e-3, 5e-4, 0.9)
    assert (sb.schedule.max_iters, sb.schedule.power, sb.data.batch_size, sb.data.crop_size) == (12000, 0.9, 8, 300)
    jt = load_config(CONFIGS / "stcnn_joint_davis16.yaml")
    assert (jt.optim.lr, jt.optim.weight_decay, jt.stcnn.lr_g, jt.stcnn.lr_d, jt.stcnn.gan_weight_decay) == \
        (1e-4, 5e-4, 1e-8, 1e-4, 5e-4)
    assert not jt.stcnn.update_g_at_start and jt.schedule.power == 0.0 and jt.data.batch_size == 1
    on = load_config(CONFIGS / "stcnn_online.yaml")
    assert (on.optim.lr, on.optim.weight_decay, on.schedule.max_iters, on.stcnn.dream_pairs) == (1e-4, 5e-4, 600, 100)


@pytest.mark.parametrize("recipe", RECIPES)
def test_smoke_run_of_every_recipe(recipe: str, tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / f"{recipe}.yaml", ["smoke=true"])
    result = train(cfg, tmp_path / "run")
    assert result.iteration == 2 and not result.interrupted
    state = read_state_dict(tmp_path / "run" / "model_final.pt")
    assert not any(k.startswith("discriminator.") for k in state)
    adversarial = recipe in ("stcnn_framepred", "stcnn_joint_davis16")
    assert (tmp_path / "run" / "discriminator_final.pt").is_file() == adversarial


def test_joint_bf16_smoke(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "stcnn_joint_davis16.yaml", ["smoke=true", "precision=bf16"])
    assert train(cfg, tmp_path / "run").iteration == 2


def test_joint_resume_is_exact_including_the_margin_rule(tmp_path: Path) -> None:
    overrides = ["smoke=true", "deterministic=true", "stcnn.lr_g=1e-3", "stcnn.update_g_at_start=true"]
    cfg = load_config(CONFIGS / "stcnn_joint_davis16.yaml", overrides)
    small = apply_stcnn_smoke(cfg)
    small.smoke = False  # keep the shrunk settings, change the length
    small.schedule.max_iters = 4
    full = train(small, tmp_path / "full")

    def trainer(out: Path) -> Trainer:
        seed_everything(small.seed)
        module = build_stage_module(small)
        return Trainer(small, module, build_stage_dataset(small, out), out_dir=out,
                       dist_info=init_distributed("cpu"), step_hook=build_step_hook(small))

    first = trainer(tmp_path / "split").fit(until=2)
    assert first.interrupted and first.iteration == 2
    second = trainer(tmp_path / "split")
    second.fit(resume=True)
    a = read_state_dict(tmp_path / "full" / "model_final.pt")
    b = second.model.exported().state_dict()
    for k, v in a.items():
        assert torch.equal(v, b[k]), k
    ref = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["extra"]["step_hook"]
    assert second.step_hook.state_dict() == ref
    assert full.iteration == 4


def test_bad_recipe_is_a_config_error(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "stcnn_joint_davis16.yaml", ["smoke=true", "optim.name=adamw"])
    with pytest.raises(ConfigError, match="uses 'sgd'"):
        train(cfg, tmp_path / "run")
    with pytest.raises(ConfigError, match="stcnn.stage"):
        load_config(CONFIGS / "stcnn_online.yaml", ["stcnn.stage=pretrain"])
    cfg = load_config(CONFIGS / "stcnn_joint_davis16.yaml", ["data.root=null"])
    with pytest.raises(ConfigError, match="data.root"):
        train(cfg, tmp_path / "run2")
