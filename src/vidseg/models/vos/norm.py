"""The two BatchNorm behaviours of STCNN (spec §5.4, §5.7), with torch's BatchNorm2d state-dict keys.

The official code never calls ``net.eval()``: the spatial branch's constructor puts its BNs in eval mode once
(frozen statistics, learnable affine), and the temporal branch's BNs stay in train mode, also at test time,
where they normalise with the statistics of the single test sample. The two classes below reproduce that
independently of ``model.train()`` / ``model.eval()``:

* :class:`FrozenStatsBatchNorm2d` always normalises with its running statistics (spatial branch);
* :class:`PredBatchNorm2d` behaves like ``nn.BatchNorm2d`` in train mode; in eval mode it uses the batch
  statistics (without touching the running buffers) when ``batch_stats_in_eval`` is True, the "official"
  test mode, and its running statistics otherwise (the usual eval mode).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FrozenStatsBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d that always uses (and never updates) its running statistics; weight and bias still learn."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> same shape, normalised with the running mean and variance."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class PredBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d of the temporal branch; see the module docstring for ``batch_stats_in_eval``."""

    batch_stats_in_eval: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, H, W] -> same shape; batch statistics in train mode and in the official eval mode."""
        if self.training or not self.batch_stats_in_eval:
            return super().forward(x)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
