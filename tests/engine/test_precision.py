"""precision: auto (issue 13): bf16 autocast exactly where the device computes bfloat16 natively."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _toy import ToyClips, ToyVideoModel, toy_config  # noqa: E402

from vidseg.config import load_config  # noqa: E402
from vidseg.engine.precision import native_bf16, resolve_precision  # noqa: E402
from vidseg.engine.trainer import Trainer  # noqa: E402
from vidseg.errors import ConfigError  # noqa: E402

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("amx, avx512_bf16, expected", [(True, False, "bf16"), (False, True, "bf16"),
                                                         (False, False, "fp32")])
def test_auto_follows_the_cpu(monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert native_bf16(CPU) == (expected == "bf16")
    assert resolve_precision("auto", CPU) == expected
    assert resolve_precision("fp32", CPU) == "fp32" and resolve_precision("bf16", CPU) == "bf16"


def test_auto_on_a_device_without_native_bf16_is_fp32():
    assert resolve_precision("auto", torch.device("meta")) == "fp32"


@pytest.mark.parametrize("native", [True, False])
def test_trainer_autocasts_when_auto_resolves_to_bf16(tmp_path, monkeypatch, native):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    trainer = Trainer(toy_config(2, precision="auto"), ToyVideoModel(), ToyClips(), out_dir=tmp_path)
    assert trainer.precision == ("bf16" if native else "fp32")
    with trainer._autocast():
        product = torch.ones(4, 4) @ torch.ones(4, 4)
    assert product.dtype == (torch.bfloat16 if native else torch.float32)


def test_recipes_choose_auto_for_cffm_only():
    """CFFM recipes: auto (bf16 was faster with the same losses); SegFormer: fp32 (bf16 was slower)."""
    assert load_config(ROOT / "configs/cffm_b0_vspw.yaml").precision == "auto"
    assert load_config(ROOT / "configs/segformer_b0_vspw.yaml").precision == "fp32"
    with pytest.raises(ConfigError):
        load_config(ROOT / "configs/cffm_b0_vspw.yaml", ["precision=fp16"])


def test_demo_models_train_in_fp32_unless_asked(tmp_path):
    """The demo stays fp32 (portable numbers); a demo model can ask for bf16 (the precision experiment)."""
    from dataclasses import replace

    from vidseg.demo.runs import DEFAULT_MODELS, DemoSize, demo_config

    cffm = DEFAULT_MODELS[1]
    assert demo_config(cffm, tmp_path, DemoSize(), 0).precision == "fp32"
    assert demo_config(replace(cffm, precision="bf16"), tmp_path, DemoSize(), 0).precision == "bf16"
