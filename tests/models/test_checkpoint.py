"""Checkpoint reading/loading: formats, prefix stripping, key reports, shape errors, weights_only."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from vidseg.errors import DataError
from vidseg.models.checkpoint import load_weights, read_state_dict, save_weights, strip_prefix


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def _same(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", ["w.pth", "w.pt", "w.safetensors"])
def test_round_trip(tmp_path, name):
    src, dst = _net(0), _net(1)
    assert not _same(src, dst)
    save_weights(src, tmp_path / name)
    report = load_weights(dst, tmp_path / name)
    assert _same(src, dst)
    assert report.missing == [] and report.unexpected == []
    assert report.loaded == len(src.state_dict())


def test_module_prefix_and_nested_state_dict(tmp_path):
    src, dst = _net(0), _net(1)
    ckpt = {"meta": {"epoch": 3}, "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}
    torch.save(ckpt, tmp_path / "ddp.pth")
    load_weights(dst, tmp_path / "ddp.pth")
    assert _same(src, dst)


def test_hf_folder(tmp_path):
    src, dst = _net(0), _net(1)
    (tmp_path / "hf").mkdir()
    save_weights(src, tmp_path / "hf" / "model.safetensors")
    load_weights(dst, tmp_path / "hf")
    assert _same(src, dst)


def test_missing_and_unexpected_are_named(tmp_path):
    src = _net(0)
    state = src.state_dict()
    state.pop("3.bias")
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "w.pth")
    report = load_weights(_net(1), tmp_path / "w.pth")
    assert report.missing == ["3.bias"]
    assert report.unexpected == ["extra.weight"]
    assert "3.bias" in report.summary()
    with pytest.raises(DataError, match="3.bias"):
        load_weights(_net(1), tmp_path / "w.pth", strict=True)
    report = load_weights(_net(1), tmp_path / "w.pth", ignore_unexpected=["extra."])
    assert report.unexpected == []


def test_shape_mismatch_is_an_error(tmp_path):
    state = _net(0).state_dict()
    state["0.weight"] = torch.zeros(5, 3, 3, 3)
    torch.save(state, tmp_path / "w.pth")
    dst = _net(1)
    before = dst.state_dict()["0.weight"].clone()
    with pytest.raises(DataError, match=r"shape mismatch.*0\.weight"):
        load_weights(dst, tmp_path / "w.pth")
    assert torch.equal(dst.state_dict()["0.weight"], before)  # nothing half-loaded


def test_converter_is_applied(tmp_path):
    src, dst = _net(0), _net(1)
    torch.save({f"old.{k}": v for k, v in src.state_dict().items()}, tmp_path / "w.pth")
    load_weights(dst, tmp_path / "w.pth", converter=lambda s: strip_prefix(s, "old."))
    assert _same(src, dst)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_weights_only_refuses_code(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"x": _Evil()}, f, protocol=2)
    with pytest.raises(DataError, match="weights_only"):
        read_state_dict(path)


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")
    with pytest.raises(DataError, match="model.safetensors"):
        read_state_dict(tmp_path)
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(DataError, match="safetensors"):
        read_state_dict(tmp_path / "bad.safetensors")
