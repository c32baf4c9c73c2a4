"""Iteration-based poly learning-rate schedule with linear warm-up (mmcv ``PolyLrUpdaterHook`` semantics).

At iteration ``i`` (0-based, the step about to be taken) each group's learning rate is::

    regular = (base - min_lr) * (1 - i / max_iters) ** power + min_lr
    lr      = regular * (1 - (1 - i / warmup_iters) * (1 - warmup_ratio))   if i < warmup_iters
    lr      = regular                                                        otherwise

where ``base`` is the group's initial lr (its multiplier included). CFFM: power 1.0, warm-up 1500, ratio 1e-6;
TCB: power 0.9, no warm-up.
"""

from __future__ import annotations

import torch

from vidseg.config import ScheduleConfig


def lr_at(i: int, base: float, cfg: ScheduleConfig) -> float:
    """Learning rate at iteration ``i`` for a group whose initial lr is ``base`` (reference formula)."""
    progress = min(i, cfg.max_iters) / max(cfg.max_iters, 1)
    regular = (base - cfg.min_lr) * (1.0 - progress) ** cfg.power + cfg.min_lr
    if cfg.warmup_iters > 0 and i < cfg.warmup_iters:
        k = (1.0 - i / cfg.warmup_iters) * (1.0 - cfg.warmup_ratio)
        return regular * (1.0 - k)
    return regular


class PolyWarmupSchedule(torch.optim.lr_scheduler.LRScheduler):
    """:func:`lr_at` as a torch scheduler: call ``step()`` after each optimizer step.

    Its state (``last_epoch`` = iterations done, ``base_lrs``) goes into checkpoints via ``state_dict()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, last_epoch: int = -1) -> None:
        self.cfg = cfg
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [lr_at(self.last_epoch, base, self.cfg) for base in self.base_lrs]

    def state_dict(self) -> dict:
        return {k: v for k, v in super().state_dict().items() if k != "cfg"}
