"""STCNN online fine-tuning of one video on its first frame (``train_online_dream.py``), outside the trainer.

``finetune_online(model, frame0, mask0)`` dreams ``pairs`` image/mask pairs from the first frame
(:mod:`vidseg.data.lucid_dream`), then trains the spatial branch for ``epochs`` epochs with batch 1 in a
shuffled order (SGD lr 1e-4, weight decay 5e-4, momentum 0.9, BCE on the fused output only); the temporal
branch is frozen and its input is the dream image repeated delta times. With ``checkpoint`` set, the state is
saved after every epoch and an interrupted fine-tuning resumes from the last finished epoch with the same
result as an uninterrupted one.

Example::

    model = build_stcnn(...)                      # trained joint weights loaded
    finetune_online(model, frame0, mask0)         # 100 pairs x 6 epochs = 600 steps
    # then segment the video with model (vidseg.inference)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidseg.data.lucid_dream import DreamConfig
from vidseg.data.stcnn_data import DreamClips
from vidseg.engine.stcnn_stages import OnlineStage, StcnnStepHook, run_step
from vidseg.errors import DataError
from vidseg.models.checkpoint import save_torch_atomic


@dataclass(frozen=True)
class OnlineConfig:
    """The official online recipe.

    Attributes:
        pairs: lucid-dream pairs per video (100).
        epochs: passes over the pairs (6), batch 1.
        lr, weight_decay, momentum: SGD of the spatial branch.
        seed: dreaming, augmentation and shuffling seed.
        augment: flip + scale/rotate on top of the dreams (official).
    """

    pairs: int = 100
    epochs: int = 6
    lr: float = 1e-4
    weight_decay: float = 5e-4
    momentum: float = 0.9
    seed: int = 0
    augment: bool = True


def _load_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Restore a fine-tuning checkpoint; returns the number of finished epochs."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return int(state["epoch"])
    except (OSError, RuntimeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(path, f"not a fine-tuning checkpoint of this model ({first})") from None


def finetune_online(model: nn.Module, image: np.ndarray, mask: np.ndarray, *, object_id: int | None = None,
                    config: OnlineConfig = OnlineConfig(), dream: DreamConfig = DreamConfig(),
                    checkpoint: str | os.PathLike | None = None, device: torch.device | str | None = None,
                    on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Fine-tune ``model`` (an STCNN, in place) on lucid dreams of one annotated frame.

    Args:
        model: STCNN; its temporal branch stays frozen afterwards only for the duration of the call.
        image: uint8 RGB [H, W, 3] first frame.
        mask: uint8 [H, W] object ids of the first frame (0 background, 255 void).
        object_id: fine-tune for this object only (one pass per object); None merges all objects.
        config: the recipe (:class:`OnlineConfig`).
        dream: lucid-dreaming ranges.
        checkpoint: file to save after every epoch and resume from when it exists.
        device: where to train (default: the model's device).
        on_step: called with (step, loss) after every step (progress bars).

    Returns:
        the mean loss of each epoch run in this call.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    requires = [p.requires_grad for p in model.parameters()]
    was_training = model.training
    data = DreamClips(image, mask, model.frame_nums, count=config.pairs, seed=config.seed, object_id=object_id,
                      augment=config.augment, config=dream)
    stage = OnlineStage(model=model).to(device)
    hook = StcnnStepHook("online", lr=config.lr, weight_decay=config.weight_decay, momentum=config.momentum)
    optimizers = hook.build_optimizers(stage)
    path = Path(checkpoint) if checkpoint is not None else None
    start = _load_state(path, model, optimizers["seg"]) if path is not None and path.is_file() else 0
    total = config.epochs * config.pairs
    means: list[float] = []
    stage.train()
    try:
        for epoch in range(start, config.epochs):
            order = np.random.default_rng([config.seed, epoch]).permutation(config.pairs)
            losses = []
            for k, index in enumerate(order):
                step = epoch * config.pairs + k
                clip = data.get(int(index), np.random.default_rng([config.seed, epoch, int(index)]))
                frames, labels = clip.frames[None].to(device), clip.labels[None].to(device)
                loss = run_step(stage, optimizers, hook, frames, labels, step, total)["loss/bce_fused"]
                losses.append(loss)
                if on_step is not None:
                    on_step(step, loss)
            means.append(float(np.mean(losses)))
            if path is not None:
                state = {"model": model.state_dict(), "optimizer": optimizers["seg"].state_dict(), "epoch": epoch + 1}
                save_torch_atomic(path, state)
    finally:
        for p, flag in zip(model.parameters(), requires, strict=True):
            p.requires_grad_(flag)
        model.train(was_training)
    return means
