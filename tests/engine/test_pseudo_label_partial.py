"""``vidseg pseudo-label --partial-weights``: strict loading by default (a backbone-only checkpoint is refused on
one line), partial loading with a warning when asked; the same switch as segment / predict / export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vidseg.engine.pseudo_label as pl
from vidseg.cli.main import main
from vidseg.models import build
from vidseg.models.checkpoint import save_weights


@pytest.fixture(scope="module")
def root_and_backbone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    from vidseg.data.synth import generate

    base = tmp_path_factory.mktemp("plp")
    generate("vspw", base / "vspw", videos=2, frames=2, size=(32, 48), seed=2, val_fraction=0.0, test_fraction=0.5,
             progress=False)
    torch.manual_seed(0)
    state = {k: v for k, v in build("segformer_b0", embed_dim=32).state_dict().items() if k.startswith("backbone.")}
    save_weights(state, base / "backbone.pt")
    return base / "vspw", base / "backbone.pt", state


def _args(root: Path, weights: Path, out: Path) -> list[str]:
    return ["pseudo-label", "--weights", str(weights), "--model", "segformer_b0", "--model-arg", "embed_dim=32",
            "--data", str(root), "--out", str(out), "--img-scale", "none", "--size-divisor", "1"]


def test_backbone_only_weights_are_refused_without_the_switch(root_and_backbone, tmp_path, capsys):
    root, weights, _ = root_and_backbone
    assert main(_args(root, weights, tmp_path / "o")) != 0
    err = capsys.readouterr().err
    assert str(weights) in err and "--partial-weights" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "train.txt").exists()


def test_partial_weights_load_what_matches(root_and_backbone, tmp_path, monkeypatch):
    root, weights, state = root_and_backbone
    seen = {}
    real = pl.generate_pseudo_labels

    def spy(models, *args, **kwargs):
        seen["models"] = models
        return real(models, *args, progress=False, **kwargs)

    monkeypatch.setattr(pl, "generate_pseudo_labels", spy)
    with pytest.warns(UserWarning, match="partial weights for segformer_b0.*missing 15 .decode_head"):
        assert main([*_args(root, weights, tmp_path / "o"), "--partial-weights"]) == 0
    (model,) = seen["models"]
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())  # the backbone is the checkpoint's
    assert (tmp_path / "o" / "train.txt").read_text().split()  # and the labels were written


def test_one_switch_for_every_command(capsys):
    for command in ("segment", "predict", "export", "pseudo-label"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--partial-weights load the tensors of --weights that match the model and warn about the rest" in text, \
            command
