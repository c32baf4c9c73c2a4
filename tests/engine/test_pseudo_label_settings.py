"""``vidseg pseudo-label`` runs every ensemble member with its official test settings unless overridden."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import vidseg.engine.pseudo_label as pl
from vidseg.cli.main import main
from vidseg.data.vspw import VSPWDataset, read_raw_mask, vspw_raw_to_label
from vidseg.inference import EnsemblePredictor, VideoPredictor
from vidseg.inference.settings import InferenceSettings as Settings
from vidseg.models import build, official_settings
from vidseg.models.checkpoint import save_weights


@pytest.fixture(scope="module")
def root_and_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from vidseg.data.synth import generate

    base = tmp_path_factory.mktemp("pls")
    generate("vspw", base / "vspw", videos=2, frames=2, size=(32, 48), seed=2, val_fraction=0.0, test_fraction=0.5,
             progress=False)
    torch.manual_seed(0)
    save_weights(build("segformer_b0", embed_dim=32), base / "w.pt")
    return base / "vspw", base / "w.pt"


def test_cli_passes_each_models_official_settings(root_and_weights, tmp_path, monkeypatch):
    root, weights = root_and_weights
    seen = {}

    def fake(models, data_root, out, **kw):
        seen.update(kw)
        return pl.PseudoLabelSummary(0, 0, 0.0, Path(out))

    monkeypatch.setattr(pl, "generate_pseudo_labels", fake)
    base = ["pseudo-label", "--weights", str(weights), str(weights), "--model", "segformer_b0",
            "--model-arg", "embed_dim=32", "--data", str(root), "--out", str(tmp_path / "o")]
    assert main(base) == 0
    assert seen["settings"] == [official_settings("segformer_b0")] * 2 and seen["tta"] is False
    assert seen["settings"][0].img_scale == (2048, 512)
    assert main([*base, "--img-scale", "none", "--size-divisor", "1", "--tta"]) == 0
    assert seen["settings"][1].img_scale is None and seen["settings"][1].size_divisor == 1 and seen["tta"] is True


def test_generate_uses_the_given_settings(root_and_weights, tmp_path):
    root, weights = root_and_weights
    models = pl.load_models([weights], ["segformer_b0"], model_kwargs={"embed_dim": 32})
    settings = Settings(img_scale=(96, 64), size_divisor=32)
    pl.generate_pseudo_labels(models, root, tmp_path / "pl", split="test", threshold=0.0, settings=[settings],
                              progress=False)
    src = VSPWDataset(root, "test").videos[0]
    predictor = EnsemblePredictor([VideoPredictor(models[0], **settings.predictor_options())], return_probs=True)
    expected = [p.probs.argmax(0).numpy() for p in predictor.predict(src.load_frame(i) for i in range(len(src)))]
    plain = [p.labels for p in VideoPredictor(models[0]).predict(src.load_frame(i) for i in range(len(src)))]
    out = VSPWDataset(tmp_path / "pl", "train").videos[0]
    got = [vspw_raw_to_label(read_raw_mask(m)) for m in out.masks]
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(got, plain, strict=True))  # the settings changed something
