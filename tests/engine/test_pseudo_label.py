"""STSC pseudo-labels: ensemble average, threshold to ignore, VSPW layout that training can read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidseg.engine.pseudo_label import confident_labels, generate_pseudo_labels, load_models
from vidseg.errors import ConfigError


def test_confident_labels_thresholds_top_probability() -> None:
    probs = torch.tensor([[[0.6, 0.3]], [[0.4, 0.3]], [[0.0, 0.4]]])  # K=3, H=1, W=2
    assert confident_labels(probs, 0.5).tolist() == [[0, 255]]
    assert confident_labels(probs, 0.3).tolist() == [[0, 2]]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vidseg.data.synth import generate

    root = tmp_path_factory.mktemp("pl") / "vspw"
    generate("vspw", root, videos=3, frames=3, size=(32, 48), seed=1, val_fraction=0.34, test_fraction=0.34,
             progress=False)
    return root


def test_pseudo_labels_match_brute_force_ensemble(tiny_root: Path, tmp_path: Path) -> None:
    from vidseg.data.vspw import VSPWDataset, read_raw_mask, vspw_raw_to_label
    from vidseg.inference.ensemble import ensemble_image_probs
    from vidseg.models.checkpoint import save_weights
    from vidseg.models.registry import build

    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = build("segformer_b0", num_classes=124, embed_dim=32)
        paths.append(tmp_path / f"m{seed}.pt")
        save_weights(model, paths[-1])
    from vidseg.errors import DataError

    with pytest.raises(DataError, match="shape mismatch"):  # weights of a narrower head than the default
        load_models(paths, ["segformer_b0"], 124)
    models = load_models(paths, ["segformer_b0"], 124, model_kwargs={"embed_dim": 32})
    src = VSPWDataset(tiny_root, "test").videos[0]
    # random models are unsure: put the threshold at the median top probability so both cases occur
    thr = float(ensemble_image_probs(models, src.load_frame(0)).max(0).values.median())
    summary = generate_pseudo_labels(models, tiny_root, tmp_path / "pl", split="test", threshold=thr, progress=False)
    assert summary.videos == 1 and summary.frames == 3 and 0 < summary.kept_fraction < 1
    out = VSPWDataset(tmp_path / "pl", "train")
    video = out.videos[0]
    for i in range(len(src)):
        probs = ensemble_image_probs(models, src.load_frame(i))
        expected = confident_labels(probs, thr)
        assert np.array_equal(vspw_raw_to_label(read_raw_mask(video.masks[i])), expected)
        assert np.array_equal(video.load_frame(i), src.load_frame(i))

    # training on train + pseudo-labelled frames
    from vidseg.config import load_config
    from vidseg.engine.build import build_train_dataset

    cfg = load_config(None, [f"data.root={tiny_root}", "model.name=segformer_b0"])
    plain = build_train_dataset(cfg, models[0], tmp_path)
    cfg.data.pseudo_label_root = str(tmp_path / "pl")
    both = build_train_dataset(cfg, models[0], tmp_path)
    assert [v.name for v in both.videos] == [v.name for v in plain.videos] + [video.name]

def test_load_models_rejects_mismatched_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one --model"):
        load_models(["a.pt", "b.pt", "c.pt"], ["segformer_b0", "cffm_b0"])
    with pytest.raises(ConfigError, match="at least one"):
        load_models([], ["segformer_b0"])
