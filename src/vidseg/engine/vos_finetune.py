"""Online fine-tuning of STCNN for one user video before segmenting it (``vidseg segment --finetune``).

``finetune_for_video(model, frame0, mask0, work_dir)`` runs :func:`vidseg.engine.stcnn_online.finetune_online`
once per object of the first-frame mask (the official per-object online stage: lucid dreams of frame 0, spatial
branch trained, temporal branch frozen) on a copy of ``model`` and returns ``{object id: fine-tuned model}``,
which :class:`vidseg.inference.vos.StcnnVosPredictor` takes directly. Each object's state is saved after every
epoch to ``work_dir/object_<id>.pt``: an interrupted fine-tuning resumes from its last finished epoch (same
result as an uninterrupted run) and a finished one is loaded instead of trained again.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from torch import nn

from vidseg.engine.stcnn_online import OnlineConfig, finetune_online
from vidseg.errors import DataError


def object_ids(mask: np.ndarray) -> list[int]:
    """The object ids of a first-frame mask (0 background and 255 void excluded), ascending."""
    return [int(v) for v in np.unique(mask) if v not in (0, 255)]


def finetune_for_video(model: nn.Module, image: np.ndarray, mask: np.ndarray, work_dir: str | os.PathLike, *,
                       config: OnlineConfig = OnlineConfig(),
                       on_object: Callable[[int, int], Callable[[int, float], None] | None] | None = None
                       ) -> dict[int, nn.Module]:
    """One fine-tuned copy of ``model`` per object of ``mask`` (module docstring).

    Args:
        model: trained STCNN (left unchanged).
        image: uint8 RGB [H, W, 3], the first frame.
        mask: uint8 [H, W] object ids of the first frame.
        work_dir: folder of the per-object checkpoints (created).
        config: the online recipe (official: 100 pairs x 6 epochs).
        on_object: ``(object id, total steps) -> on_step callback or None`` (progress bars).

    Returns:
        object id -> fine-tuned model (eval mode).

    Raises:
        DataError: the mask has no object, or a checkpoint in ``work_dir`` is not this model's.
    """
    ids = object_ids(mask)
    if not ids:
        raise DataError("<first mask>", "the first-frame mask has no object (all background or void)")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    tuned: dict[int, nn.Module] = {}
    for obj in ids:
        net = copy.deepcopy(model)
        on_step = on_object(obj, config.pairs * config.epochs) if on_object is not None else None
        finetune_online(net, image, mask, object_id=obj, config=config, checkpoint=work_dir / f"object_{obj}.pt",
                        on_step=on_step)
        tuned[obj] = net.eval()
    return tuned
