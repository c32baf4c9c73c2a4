"""Issue 14: a checkpoint written by vidseg rebuilds its own model (name, builder overrides, classes)."""

from __future__ import annotations

import pytest
import torch

from vidseg.config import TrainConfig, dump_config
from vidseg.engine.checkpoint import save_checkpoint
from vidseg.errors import DataError
from vidseg.models import build, get_entry, load_model
from vidseg.models.registry import checkpoint_spec


def _train_checkpoint(path, name, kwargs, num_classes=7):
    cfg = TrainConfig(name=name)
    cfg.model.name, cfg.model.num_classes, cfg.model.kwargs = name, num_classes, dict(kwargs)
    torch.manual_seed(0)
    model = build(name, num_classes=num_classes, **kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, iteration=1, data_position={},
                    config_yaml=dump_config(cfg))
    return model


def test_narrow_demo_tcb_checkpoint_rebuilds_and_loads(tmp_path):
    kwargs = {"encoder": "mit_b0", "channels": 16, "aux_channels": 8, "drop_path_rate": 0.0}
    path = tmp_path / "last.pt"
    model = _train_checkpoint(path, "tcb_ppm_b0", kwargs)
    assert checkpoint_spec(path) == {"name": "tcb_ppm_b0", "num_classes": 7, "kwargs": kwargs}
    with pytest.raises(DataError):  # the entry's default widths do not match: the record is what makes it load
        load_model("tcb_ppm_b0", path, num_classes=7, channels=64)
    loaded = load_model("tcb_ppm_b0", path)
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert get_entry("tcb_ppm_b0").family == "tcb"


def test_checkpoint_of_another_family_is_named(tmp_path):
    path = tmp_path / "last.pt"
    _train_checkpoint(path, "segformer_b0", {"embed_dim": 16})
    assert load_model("segformer_b0", path).decode_head is not None
    with pytest.raises(DataError, match="use --model segformer_b0"):
        load_model("cffm_b0", path)
    assert checkpoint_spec(tmp_path / "missing.pt") is None
