"""Turn a :class:`vidseg.config.TrainConfig` into a model, datasets and an evaluation function.

This is the only place that knows how recipes map onto the library's pieces:

* the model comes from the registry (``vidseg.models.build``) with ``model.kwargs`` and the loss weights;
* the training clips come from :class:`vidseg.data.dataset.ClipDataset` over the VSPW reader's videos
  (plus pseudo-labelled videos for STSC), with the method's clip sampler and a pipeline built from the
  transforms of :mod:`vidseg.data.transforms` sized by the config;
* evaluation streams every validation video through the entry's predictor with its official test settings (the
  same as ``vidseg predict``; :func:`eval_settings`) into :class:`vidseg.metrics.vspw.VSPWEvaluator` (mIoU, WIoU,
  mVC8, mVC16) and optionally TC with OpenCV DIS flow.

``smoke: true`` shrinks a recipe so it runs in seconds on a CPU (see :func:`apply_smoke`).
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vidseg.config import TrainConfig, reapply_explicit_overrides
from vidseg.data import transforms as T
from vidseg.data.dataset import ClipDataset
from vidseg.data.sampling import (
    CFFMSampler,
    ClipSampler,
    ConsecutiveSampler,
    OffsetSampler,
    SingleFrameSampler,
    TCBSampler,
)
from vidseg.data.vspw import VSPWDataset
from vidseg.engine.dataset_root import dataset_root
from vidseg.engine.panoptic import make_panoptic_evaluate_fn, panoptic_train_dataset, vipseg_root
from vidseg.errors import ConfigError
from vidseg.flow.backends import DISFlow
from vidseg.inference.settings import InferenceSettings, training_eval_settings
from vidseg.metrics.scoring import ScoredFrame, score_video
from vidseg.metrics.tc import TCEvaluator
from vidseg.metrics.vspw import VSPWEvaluator
from vidseg.models.checkpoint import load_weights
from vidseg.models.registry import build, get_entry, make_predictor, official_settings, resolve

# loss-config field -> builder keyword names that carry it
_LOSS_KWARGS = {
    "aux_weight": ("aux_weight", "deep_sup_scale"),
    "stcl_weight": ("stcl_weight",),
    "frame_weight": ("frame_weight",),
    "target_weight": ("target_weight", "ce_weight"),
    "reduction": ("loss_reduction",),
}
# weights built into a model's ``losses`` (no builder keyword): recipes may state them, not change them
_BUILT_IN_WEIGHTS = {
    "build_cffm": {"frame_weight": 0.5, "target_weight": 1.0},
    "build_segformer": {"target_weight": 1.0},
    "build_baseline": {"target_weight": 1.0},
    "build_tcb": {"target_weight": 1.0},
    "build_stsc": {"target_weight": 1.0},
}


def apply_smoke(cfg: TrainConfig) -> TrainConfig:
    """A copy of ``cfg`` shrunk for a CPU check: tiny crop, 2 steps, batch 2, synthetic data if no root.

    Architecture and optimizer settings are kept (the point is to run the real recipe's code path). Values set
    explicitly by ``--set`` on the same command line are applied again last: they win.
    """
    cfg = copy.deepcopy(cfg)
    cfg.data.crop_size = 65 if get_entry(cfg.model.name).family == "tcb" else 64
    cfg.data.base_size = (96, 64)
    cfg.data.batch_size = 2
    cfg.data.num_workers = 0
    cfg.data.val_max_videos = 1
    if cfg.data.root is None:
        cfg.data.dataset = "synthetic"
        cfg.data.synthetic_videos, cfg.data.synthetic_frames, cfg.data.synthetic_size = 3, 12, (96, 64)
    if is_panoptic(cfg):
        cfg.data.short_edges = (64,)
    cfg.schedule.max_iters = 2
    cfg.schedule.warmup_iters = min(cfg.schedule.warmup_iters, 1)
    cfg.grad_accum = 1
    cfg.checkpoint_every = 0
    cfg.keep_checkpoints = 0
    cfg.log_every = 1
    cfg.device = "cpu" if cfg.device == "auto" else cfg.device
    return reapply_explicit_overrides(cfg)  # explicit --set values win over the smoke sizes


def is_panoptic(cfg: TrainConfig) -> bool:
    """True for panoptic recipes (Clip-PanoFCN on VIPSeg): their data and evaluation live in
    :mod:`vidseg.engine.panoptic`."""
    return get_entry(cfg.model.name).task == "panoptic"


# ----------------------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------------------

def _loss_kwargs(cfg: TrainConfig, builder: Any) -> dict[str, Any]:
    params = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    fixed = _BUILT_IN_WEIGHTS.get(builder.__name__, {})
    out: dict[str, Any] = {}
    for field_name, names in _LOSS_KWARGS.items():
        value = getattr(cfg.loss, field_name)
        if value is None:
            continue
        match = next((n for n in names if n in params), None)
        if match is None and takes_any and field_name == "stcl_weight":
            match = "stcl_weight"
        if match is not None:
            out[match] = value
        elif fixed.get(field_name) != value:
            raise ConfigError(f"loss.{field_name}={value}: model {cfg.model.name} has no such weight "
                              f"(built in: {fixed or 'none'})")
    return out


def build_model(cfg: TrainConfig) -> nn.Module:
    """The registered model of ``cfg.model`` with its kwargs, loss weights and local weights."""
    entry = get_entry(cfg.model.name)
    builder = resolve(entry.builder)
    kwargs = {**_loss_kwargs(cfg, builder), **cfg.model.kwargs}
    if cfg.model.pretrained:
        if "pretrained_backbone" not in inspect.signature(builder).parameters:
            raise ConfigError(f"model.pretrained: {cfg.model.name} takes no backbone weights path")
        kwargs["pretrained_backbone"] = cfg.model.pretrained
    model = build(cfg.model.name, num_classes=cfg.model.num_classes, **kwargs)
    if cfg.model.weights:
        load_weights(model, cfg.model.weights)
    return model


# ----------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------

def data_root(cfg: TrainConfig, out_dir: str | os.PathLike) -> Path:
    """The dataset root: ``data.root``, or the synthetic data set (generated on first use)."""
    if is_panoptic(cfg):
        return vipseg_root(cfg, out_dir)
    return dataset_root(cfg, out_dir, "vspw", "the VSPW root, e.g. data/VSPW_480p")


def clip_sampler(cfg: TrainConfig, model: nn.Module) -> ClipSampler:
    """The method's training clip sampler, named by the registry entry's ``train_clips``:
    ``cffm`` (t-9, -6, -3 from ``support_offsets``), ``tcb`` (``offline_support_offsets``), ``stsc`` (its
    ``train_support_offsets``) or ``single`` frames."""
    kind = get_entry(cfg.model.name).train_clips
    if kind == "cffm":
        return CFFMSampler(dilations=tuple(-o for o in model.support_offsets), reverse_prob=cfg.data.reverse_prob)
    if kind == "tcb":
        return TCBSampler(dilations=tuple(model.offline_support_offsets), reverse_prob=cfg.data.reverse_prob)
    if kind == "stsc":
        return OffsetSampler(tuple(model.train_support_offsets))
    if kind == "single":
        return SingleFrameSampler()
    if kind == "consecutive":
        return ConsecutiveSampler(cfg.data.clip_length)
    raise ConfigError(f"model {cfg.model.name}: unknown train_clips {kind!r} in its registry entry")


def train_transform(cfg: TrainConfig) -> Any:
    """CFFM/SegFormer/STSC: keep-ratio resize into ``base_size`` x U(scale_range), crop (cat_max_ratio 0.75),
    flip, per-frame photometric distortion, pad; TCB/ResNet baselines: flip, scale {0.8, 1, 1.5, 2}, crop, pad."""
    d = cfg.data
    crop = (d.crop_size, d.crop_size)
    if get_entry(cfg.model.name).augment == "resnet":
        return T.Compose((T.RandomFlip(d.flip_prob), T.RandomScale((0.8, 1.0, 1.5, 2.0)), T.RandomCrop(crop),
                          T.Pad(crop)))
    return T.Compose((T.Resize(tuple(d.base_size), tuple(d.scale_range)), T.RandomCrop(crop, cat_max_ratio=0.75),
                      T.RandomFlip(d.flip_prob), T.PhotoMetricDistortion(per_frame=True), T.Pad(crop)))


def _videos(root: Path, split: str) -> list[Any]:
    return list(VSPWDataset(root, split).videos)


def build_train_dataset(cfg: TrainConfig, model: nn.Module, out_dir: str | os.PathLike) -> Any:
    """Training clips: the train split (plus ``data.pseudo_label_root``'s videos) with the method's sampler;
    panoptic recipes: VIPSeg clips with panoptic-id labels (:func:`vidseg.engine.panoptic.panoptic_train_dataset`)."""
    if is_panoptic(cfg):
        return panoptic_train_dataset(cfg, out_dir)
    videos = _videos(data_root(cfg, out_dir), cfg.data.train_split)
    if cfg.data.pseudo_label_root:
        videos += _videos(Path(cfg.data.pseudo_label_root), cfg.data.train_split)
    return ClipDataset(videos, clip_sampler(cfg, model), train_transform(cfg), train=True, seed=cfg.seed)


def val_videos(cfg: TrainConfig, out_dir: str | os.PathLike) -> list[Any]:
    """Validation videos (at most ``data.val_max_videos`` when set)."""
    videos = _videos(data_root(cfg, out_dir), cfg.data.val_split)
    return videos[: cfg.data.val_max_videos] if cfg.data.val_max_videos > 0 else videos


# ----------------------------------------------------------------------------------------------------------
# evaluation
# ----------------------------------------------------------------------------------------------------------

def eval_settings(cfg: TrainConfig) -> InferenceSettings:
    """The test settings of training-time evaluation: the entry's official ones with the recipe's
    ``data.base_size`` as the test scale when the official test resizes
    (:func:`vidseg.inference.settings.training_eval_settings`)."""
    return training_eval_settings(official_settings(cfg.model.name), tuple(cfg.data.base_size))


def predict_video(predictor: Any, video: Any) -> list[np.ndarray]:
    """Argmax predictions (uint8 [H, W]) of every frame of a reader video, streamed through ``predictor``."""
    frames = (video.load_frame(i) for i in range(len(video)))
    return [p.labels for p in predictor.predict(frames)]


def _scored_frames(video: Any, preds: list[np.ndarray]) -> Iterator[ScoredFrame]:
    for i, pred in enumerate(preds):
        yield ScoredFrame(f"{i:05d}", pred, video.load_raw_mask(i), functools.partial(video.load_frame, i),
                          f"{video.name}/{i}")


def evaluate_videos(model: nn.Module, videos: Sequence[Any], device: torch.device | str | None = None, *,
                    name: str, settings: InferenceSettings, num_classes: int = 124, tc: bool = False,
                    keep_predictions: bool = False,
                    desc: str | None = None) -> tuple[dict[str, float], dict[str, list[np.ndarray]]]:
    """mIoU, WIoU, mVC8, mVC16 (and TC with DIS flow) of ``model`` on reader videos with raw VSPW masks,
    through the scoring loop :func:`vidseg.metrics.scoring.score_video`.

    Args:
        model: the model being trained (put back in its mode afterwards).
        videos: reader videos with raw VSPW masks.
        device: where to run.
        name: the registered model name: its entry's predictor runs the videos.
        settings: test settings (:func:`eval_settings`), passed to the predictor as ``vidseg predict`` does.
        num_classes, tc: evaluator classes; also TC with DIS flow.
        keep_predictions: also return the predictions.
        desc: show a progress bar over the videos with this label.

    Returns:
        (metrics as fractions, {video: predictions} when ``keep_predictions``).
    """
    was_training = model.training
    predictor = make_predictor(name, model, device=device, **settings.predictor_options())
    ev = VSPWEvaluator(num_classes=num_classes, vc_lengths=(8, 16))
    tc_ev, flow = (TCEvaluator(num_classes), DISFlow()) if tc else (None, None)
    kept: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for video in tqdm(videos, desc=desc, unit="video", disable=desc is None, dynamic_ncols=True):
            preds = predict_video(predictor, video)
            score_video(video.name, _scored_frames(video, preds), ev, tc_ev, flow)
            if keep_predictions:
                kept[video.name] = preds
    res = ev.evaluate()
    metrics = {k: float(res[k]) for k in ("mIoU", "WIoU", "mVC8", "mVC16", "pixel_acc")}
    if tc_ev is not None:
        metrics["TC"] = float(tc_ev.evaluate()["TC"])
    model.train(was_training)
    return metrics, kept


def make_evaluate_fn(cfg: TrainConfig, out_dir: str | os.PathLike) -> Any:
    """``(model, device) -> metrics`` over the validation videos, for :class:`vidseg.engine.trainer.Trainer`
    (panoptic recipes: VPQ / STQ, :func:`vidseg.engine.panoptic.make_panoptic_evaluate_fn`)."""
    if is_panoptic(cfg):
        return make_panoptic_evaluate_fn(cfg, out_dir)
    videos = val_videos(cfg, out_dir)
    settings = eval_settings(cfg)

    def evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
        return evaluate_videos(model, videos, device, name=cfg.model.name, settings=settings,
                               num_classes=cfg.model.num_classes)[0]

    return evaluate
