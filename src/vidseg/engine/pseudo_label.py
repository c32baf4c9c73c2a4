"""STSC pseudo-labels: average the softmax of several models, keep confident pixels, write VSPW masks.

For every frame of the chosen split (by default ``test``, whose frames have no masks) the class
probabilities of the models are averaged (:class:`vidseg.inference.EnsemblePredictor`); pixels whose top
probability is below ``threshold`` (STSC: 0.5) become ignore. The output folder is itself a VSPW-layout data
set::

    OUT/train.txt                          # the pseudo-labelled videos
    OUT/data/<video>/origin/<frame>.jpg    # the frames (hard links to the source when possible)
    OUT/data/<video>/mask/<frame>.png      # raw VSPW values: class k -> k + 1, ignored pixels -> 255 (void)

so that training on train + pseudo-labelled frames is ``--set data.pseudo_label_root=OUT``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vidseg.data.vspw import VSPWDataset, vspw_label_to_raw, write_raw_mask
from vidseg.errors import ConfigError
from vidseg.fileio import write_text_atomic
from vidseg.inference.backend import Backend
from vidseg.inference.ensemble import EnsemblePredictor
from vidseg.inference.predictor import VideoPredictor
from vidseg.inference.settings import InferenceSettings
from vidseg.models.registry import load_model, official_settings
from vidseg.structures import IGNORE_LABEL


@dataclass
class PseudoLabelSummary:
    """What :func:`generate_pseudo_labels` wrote."""

    videos: int
    frames: int
    kept_fraction: float  # share of pixels above the threshold
    out: Path


def names_per_weights(weights: Sequence[str | os.PathLike], model_names: Sequence[str]) -> list[str]:
    """The registered name of each weights file: one name for all, or one per file (ConfigError otherwise)."""
    if not weights:
        raise ConfigError("pseudo-labels need at least one --weights file")
    if len(model_names) not in (1, len(weights)):
        raise ConfigError(f"give one --model for all weights or one per weights file "
                          f"({len(model_names)} models for {len(weights)} weights)")
    return list(model_names) * len(weights) if len(model_names) == 1 else list(model_names)


def load_models(weights: Sequence[str | os.PathLike], model_names: Sequence[str], num_classes: int = 124,
                device: str | torch.device = "cpu", model_kwargs: dict | None = None, *, strict: bool = True
                ) -> list[torch.nn.Module]:
    """Build one registered model per weights file (one name for all, or one name per file) and load it
    (``model_kwargs`` go to every builder, e.g. ``{"embed_dim": 64}`` for the demo's models, after the
    build arguments the model's official test implies, e.g. TCB-OCR-mem's official memory rule). ``strict``:
    every tensor must match (the default); False loads what matches and warns
    (:func:`vidseg.models.load_model`, the CLI's ``--partial-weights``)."""
    models = []
    for name, path in zip(names_per_weights(weights, model_names), weights, strict=True):
        kwargs = {**official_settings(name).model_kwargs, **(model_kwargs or {})}
        model = load_model(name, path, num_classes=num_classes, strict=strict, **kwargs)
        models.append(model.to(device).eval())
    return models


def confident_labels(probs: torch.Tensor, threshold: float) -> np.ndarray:
    """Argmax of probs [K, H, W] as uint8 [H, W], IGNORE_LABEL where the top probability < ``threshold``."""
    top, labels = probs.max(0)
    labels = labels.to(torch.uint8)
    labels[top < threshold] = IGNORE_LABEL
    return labels.numpy()


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def generate_pseudo_labels(models: Sequence[torch.nn.Module], data_root: str | os.PathLike,
                           out: str | os.PathLike, *, split: str = "test", threshold: float = 0.5,
                           settings: Sequence[InferenceSettings] | None = None, tta: bool = False,
                           progress: bool = True, backends: Sequence[Backend | None] | None = None
                           ) -> PseudoLabelSummary:
    """Write ensemble pseudo-labels for every frame of ``split`` of a VSPW root into ``out`` (see module doc).

    ``settings`` gives each model's test pipeline (``vidseg pseudo-label`` passes the official ones,
    :func:`vidseg.models.official_settings`); None feeds the frames as they are. ``tta`` adds each setting's
    multi-scale + flip views. ``backends``: what runs each model (:func:`vidseg.inference.backend.make_backend`;
    None entries or None: torch).
    """
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold must lie in [0, 1], got {threshold}")
    if settings is not None and len(settings) != len(models):
        raise ConfigError(f"{len(settings)} test settings for {len(models)} models")
    videos = VSPWDataset(data_root, split).videos
    out = Path(out)
    options = [s.predictor_options(tta=tta) for s in settings] if settings is not None else [{} for _ in models]
    if backends is not None and len(backends) != len(models):
        raise ConfigError(f"{len(backends)} backends for {len(models)} models")
    runners = list(backends) if backends is not None else [None] * len(models)
    ensemble = EnsemblePredictor([VideoPredictor(m, backend=b, **o)
                                  for m, o, b in zip(models, options, runners, strict=True)], return_probs=True)
    kept = total = frames = 0
    bar = tqdm(total=sum(len(v) for v in videos), disable=not progress, desc="pseudo-label", unit="frame")
    with torch.no_grad(), bar:
        for video in videos:
            stream = (video.load_frame(i) for i in range(len(video)))
            for pred in ensemble.predict(stream):
                labels = confident_labels(pred.probs, threshold)
                src = video.frames[pred.index]
                _link_or_copy(src, out / "data" / video.name / "origin" / src.name)
                write_raw_mask(out / "data" / video.name / "mask" / f"{src.stem}.png", vspw_label_to_raw(labels))
                kept += int((labels != IGNORE_LABEL).sum())
                total += labels.size
                frames += 1
                bar.update(1)
    write_text_atomic(out / "train.txt", "".join(f"{v.name}\n" for v in videos))
    return PseudoLabelSummary(len(videos), frames, kept / max(total, 1), out)
