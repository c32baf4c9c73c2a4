"""Every recipe in configs/ parses, builds its model and parameter groups; smoke runs train them on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vidseg.config import load_config
from vidseg.engine.build import apply_smoke, build_model
from vidseg.engine.optim import build_param_groups

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "configs").glob("*.yaml"))
NAMES = [p.stem for p in RECIPES]


def test_all_recipes_present() -> None:
    expected = {*(f"cffm_b{v}_vspw" for v in "0125"), *(f"segformer_b{v}_vspw" for v in "0125"),
                "tcb_ppm_r101_vspw", "tcb_ocr_r101_vspw", "pspnet_r101_vspw", "ocrnet_r101_vspw",
                "deeplabv3plus_r101_vspw", "upernet_r101_vspw", "stsc_upernet_swin_l_vspw"}
    assert expected <= set(NAMES)


@pytest.mark.parametrize("path", RECIPES, ids=NAMES)
def test_recipe_parses_and_builds(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.name == path.stem
    with torch.device("meta"):  # the builder, its kwargs and the groups, without allocating weights
        model = build_model(cfg)
    groups = build_param_groups(model, cfg.optim)
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in model.parameters() if p.requires_grad)
    smoke = apply_smoke(load_config(path, ["smoke=true"]))
    assert smoke.schedule.max_iters == 2 and smoke.data.dataset == "synthetic"


def test_paper_numbers() -> None:
    cffm = load_config(ROOT / "configs/cffm_b0_vspw.yaml")
    assert (cffm.optim.name, cffm.optim.lr, cffm.optim.weight_decay, cffm.optim.head_lr_mult) == ("adamw", 6e-5, 0.01, 10)
    assert (cffm.schedule.max_iters, cffm.schedule.warmup_iters, cffm.schedule.power) == (160000, 1500, 1.0)
    assert (cffm.data.crop_size, cffm.data.batch_size, cffm.loss.frame_weight, cffm.loss.target_weight) == (480, 8, 0.5, 1.0)
    tcb = load_config(ROOT / "configs/tcb_ocr_r101_vspw.yaml")
    assert (tcb.optim.name, tcb.optim.lr, tcb.optim.momentum, tcb.optim.weight_decay) == ("sgd", 2e-3, 0.9, 1e-4)
    assert (tcb.optim.encoder_lr_mult, tcb.schedule.power, tcb.data.crop_size, tcb.data.batch_size) == (0.1, 0.9, 479, 8)
    stsc = load_config(ROOT / "configs/stsc_upernet_swin_l_vspw.yaml")
    assert (stsc.optim.lr, stsc.schedule.warmup_iters, stsc.schedule.max_iters, stsc.data.crop_size) == (7e-5, 1500, 20000, 768)
    assert (stsc.loss.target_weight, stsc.loss.stcl_weight) == (1.0, 0.2)


def _smoke(path: Path, tmp_path: Path) -> None:
    from vidseg.engine.run import train

    res = train(load_config(path, ["smoke=true", "eval_every=-1"]), tmp_path / path.stem)
    assert res.iteration == 2 and all(torch.isfinite(torch.tensor(loss)) for _, loss in res.history)
    assert (tmp_path / path.stem / "last.pt").is_file() and (tmp_path / path.stem / "model_final.pt").is_file()


@pytest.mark.parametrize("name", ["cffm_b0_vspw"])
def test_small_recipes_smoke_train(name: str, tmp_path: Path) -> None:
    _smoke(ROOT / "configs" / f"{name}.yaml", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=NAMES)
def test_every_recipe_smoke_trains(path: Path, tmp_path: Path) -> None:
    _smoke(path, tmp_path)
