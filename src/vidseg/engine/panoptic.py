"""The panoptic (VIPSeg, Clip-PanoFCN) side of :mod:`vidseg.engine.build`: training clips and VPQ evaluation.

* Training clips: :func:`vidseg.data.vipseg_train.vipseg_train_dataset` over the VIPSeg root (raw release or
  720P layout) or a synthetic VIPSeg set generated into the run folder; the augmentation is the official one
  sized by the config (``data.short_edges``, ``data.max_size``, ``data.crop_size``, ``data.flip_prob``).
* Evaluation: every validation video streams through :class:`vidseg.inference.panoptic.PanopticVideoPredictor`
  (clips of 3, tracking) into :class:`vidseg.metrics.vipseg_eval.VIPSegEvaluator` (VPQ over k = 1, 2, 4, 6, 8 and
  its mean, STQ, AQ, SQ), with GT and predicted segment areas taken from the id maps (``strict`` protocol).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidseg.config import TrainConfig
from vidseg.data.dataset import ClipDataset
from vidseg.data.vipseg_train import vipseg_train_dataset, vipseg_train_transform, vipseg_videos
from vidseg.engine.dataset_root import dataset_root
from vidseg.inference.panoptic import PanopticVideoPredictor
from vidseg.metrics.vipseg_eval import VIPSegEvaluator
from vidseg.structures import DEFAULT_LABEL_DIVISOR


def vipseg_root(cfg: TrainConfig, out_dir: str | os.PathLike) -> Path:
    """The VIPSeg root: ``data.root``, or the synthetic VIPSeg set (generated on first use)."""
    return dataset_root(cfg, out_dir, "vipseg", "the VIPSeg root, e.g. data/VIPSeg_720P")


def panoptic_train_dataset(cfg: TrainConfig, out_dir: str | os.PathLike) -> ClipDataset:
    """Training clips of ``data.clip_length`` consecutive frames with panoptic-id labels."""
    d = cfg.data
    transform = vipseg_train_transform(d.short_edges, d.max_size, d.crop_size, d.flip_prob)
    return vipseg_train_dataset(vipseg_root(cfg, out_dir), d.train_split, clip_length=d.clip_length,
                                transform=transform, seed=cfg.seed)


def segments_of(ids: np.ndarray, label_divisor: int = DEFAULT_LABEL_DIVISOR) -> list[dict]:
    """``segments_info`` of a library id map [H, W]: id, 0-based category and pixel area of every segment."""
    uniq, counts = np.unique(ids, return_counts=True)
    return [{"id": int(i), "category_id": int(i) // label_divisor - 1, "iscrowd": 0, "area": int(n)}
            for i, n in zip(uniq, counts, strict=True) if i != 0]


def evaluate_panoptic_videos(model: nn.Module, videos: Sequence[Any], *, clip_length: int = 3,
                             ks: Sequence[int] = (1, 2, 4, 6, 8)) -> dict[str, float]:
    """VPQ (mean over ``ks``; all / thing / stuff), VPQ1, STQ, AQ and SQ of ``model`` on reader videos.

    Args:
        model: a Clip-PanoFCN network (evaluated on its own device; its train/eval mode is restored).
        videos: VIPSeg reader videos (``load_frame``, ``load_panoptic_ids``).
        clip_length: frames per non-overlapping clip (3 as the official test).
        ks: VPQ window lengths.

    Returns:
        metrics as fractions.
    """
    was_training = model.training
    ev = VIPSegEvaluator(ks=ks, protocol="strict")
    predictor = PanopticVideoPredictor(model, clip_length=clip_length)
    with torch.no_grad():
        for video in videos:
            frames = (video.load_frame(i) for i in range(len(video)))
            preds = [p.ids for p in predictor.predict(frames)]
            gts = [video.load_panoptic_ids(i) for i in range(len(video))]
            ev.process_arrays(video.name, gts, preds, [segments_of(g) for g in gts],
                              [segments_of(p) for p in preds])
    res = ev.evaluate()
    model.train(was_training)
    final = res["VPQ_final"]
    return {"VPQ": float(final["all"]), "VPQ_thing": float(final["thing"]), "VPQ_stuff": float(final["stuff"]),
            "VPQ1": float(res["VPQ"][str(ks[0])]["all"]), "STQ": float(res["STQ"]), "AQ": float(res["AQ"]),
            "SQ": float(res["SQ"])}


def make_panoptic_evaluate_fn(cfg: TrainConfig, out_dir: str | os.PathLike) -> Any:
    """``(model, device) -> metrics`` over the validation videos (at most ``data.val_max_videos``)."""
    videos = vipseg_videos(vipseg_root(cfg, out_dir), cfg.data.val_split)
    if cfg.data.val_max_videos > 0:
        videos = videos[: cfg.data.val_max_videos]
    clip_length = cfg.data.clip_length

    def evaluate(model: nn.Module, device: torch.device) -> dict[str, float]:
        return evaluate_panoptic_videos(model, videos, clip_length=clip_length)

    return evaluate
