"""Config: strict keys with suggestions, typed overrides, YAML round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidseg.config import TrainConfig, apply_override, dump_config, load_config
from vidseg.errors import ConfigError


def test_yaml_round_trip_is_equal(tmp_path: Path) -> None:
    cfg = load_config(None, ["optim.lr=1e-4", "data.scale_range=[0.75, 1.5]", "model.kwargs={depth: 1}"])
    (tmp_path / "c.yaml").write_text(dump_config(cfg))
    assert load_config(tmp_path / "c.yaml") == cfg
    assert cfg.optim.lr == 1e-4 and cfg.data.scale_range == (0.75, 1.5) and cfg.model.kwargs == {"depth": 1}


def test_unknown_key_suggests_close_match(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("optim:\n  lr: 0.1\n  wieght_decay: 0.1\n")
    with pytest.raises(ConfigError, match=r"wieght_decay.*did you mean 'weight_decay'"):
        load_config(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match=r"did you mean 'schedule'"):
        load_config(None, ["schedul.max_iters=3"])
    with pytest.raises(ConfigError, match=r"did you mean 'max_iters'"):
        load_config(None, ["schedule.max_iter=3"])


@pytest.mark.parametrize(("item", "field", "value"), [
    ("schedule.max_iters=1e3", ("schedule", "max_iters"), 1000),
    ("smoke=true", ("smoke",), True),
    ("smoke=no", ("smoke",), False),
    ("optim.lr=6e-5", ("optim", "lr"), 6e-5),
    ("optim.lr=1", ("optim", "lr"), 1.0),
    ("data.root=null", ("data", "root"), None),
    ("data.root=/x/VSPW", ("data", "root"), "/x/VSPW"),
    ("loss.stcl_weight=0.2", ("loss", "stcl_weight"), 0.2),
])
def test_override_converts_types(item: str, field: tuple[str, ...], value: object) -> None:
    cfg = apply_override(TrainConfig(), item)
    obj = cfg
    for f in field:
        obj = getattr(obj, f)
    assert obj == value and type(obj) is type(value)


@pytest.mark.parametrize("item", ["schedule.max_iters=1.5", "smoke=maybe", "optim.lr=fast", "data.scale_range=[1]",
                                  "optim.name=adagrad", "precision=fp16", "model=3", "noequals"])
def test_bad_values_are_errors(item: str) -> None:
    with pytest.raises(ConfigError):
        apply_override(TrainConfig(), item)


def test_choice_error_suggests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="did you mean 'adamw'"):
        apply_override(TrainConfig(), "optim.name=adamww")


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
