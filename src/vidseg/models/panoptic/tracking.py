"""Inter-clip tracking of Clip-PanoFCN (official ``eval_net_video.py``): per-class embedding memory + LAP.

For every clip after the first one with things, per thing category present in the clip:

* a category the memory has never seen keeps the clip's own instance indices and its embeddings become the memory;
* otherwise cost ``(1 - cos) / 2`` between the clip's embeddings (rows) and the memory (columns) is solved as
  ``lap.lapjv(cost, extend_cost=True, cost_limit=0.3)`` does: on the (n+m) x (n+m) matrix with the real costs in
  the top-left block, ``cost_limit / 2`` in the off-diagonal blocks and 0 bottom-right, so a pair is matched only
  if that beats leaving both unmatched (cos >= 0.4 at most). We solve the same extended matrix with SciPy's
  ``linear_sum_assignment``; both return an optimal assignment (ties may be broken differently);
* a matched instance takes the memory slot's index and the slot becomes ``normalise(0.8 mem + 0.2 cur)``;
* an unmatched instance gets index ``len(memory[cat])`` and its embedding is appended.

The memory is the only state; its size grows with the number of distinct tracks, not with the video length.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


def lapjv_extended(cost: np.ndarray, cost_limit: float) -> tuple[np.ndarray, np.ndarray]:
    """Assignment with ``lap.lapjv(cost, extend_cost=True, cost_limit=cost_limit)`` semantics.

    Args:
        cost: float array [n, m].
        cost_limit: a pair costs at most this much to be worth matching.

    Returns:
        (x [n]: column matched to each row or -1, y [m]: row matched to each column or -1).
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    x = np.full(n, -1, dtype=np.int64)
    y = np.full(m, -1, dtype=np.int64)
    if n == 0 or m == 0:
        return x, y
    extended = np.full((n + m, n + m), cost_limit / 2.0)
    extended[n:, m:] = 0.0
    extended[:n, :m] = cost
    rows, cols = linear_sum_assignment(extended)
    for r, c in zip(rows, cols):
        if r < n and c < m:
            x[r], y[c] = c, r
    return x, y


class EmbeddingTracker:
    """Per-category memory of instance embeddings, updated clip by clip.

    Args:
        cost_limit: ``TEST.COST_THRESHOLD`` (0.3).
        memory_weight: ``TEST.MEM_WEIGHT`` (0.8), the weight of the old memory in the update.
    """

    def __init__(self, cost_limit: float = 0.3, memory_weight: float = 0.8) -> None:
        self.cost_limit = cost_limit
        self.memory_weight = memory_weight
        self.memory: dict[int, list[torch.Tensor]] = {}

    def reset(self) -> None:
        """Forget every track (start of a new video)."""
        self.memory = {}

    def num_tracks(self) -> int:
        """Number of embeddings held (the whole state)."""
        return sum(len(v) for v in self.memory.values())

    def update(self, embeddings: dict[int, list[torch.Tensor]]) -> dict[int, list[int]]:
        """Match one clip's instances to the memory and update it.

        Args:
            embeddings: category -> L2-normalised embeddings [C] of the clip's instances (index = instance k).

        Returns:
            category -> track index of each of the clip's instances (same order).
        """
        if not self.memory:
            self.memory = {cat: list(embs) for cat, embs in embeddings.items()}
            return {cat: list(range(len(embs))) for cat, embs in embeddings.items()}
        result = {}
        for cat, embs in embeddings.items():
            if cat not in self.memory:
                self.memory[cat] = list(embs)
                result[cat] = list(range(len(embs)))
            else:
                result[cat] = self._match(self.memory[cat], embs)
        return result

    def _match(self, memory: list[torch.Tensor], current: list[torch.Tensor]) -> list[int]:
        cur, mem = torch.stack(current, 0), torch.stack(memory, 0)
        cost = 1.0 - (cur @ mem.t() + 1.0) / 2.0
        x, _ = lapjv_extended(cost.detach().cpu().double().numpy(), self.cost_limit)
        tracks = [0] * len(current)
        w = self.memory_weight
        for k, slot in enumerate(x.tolist()):
            if slot >= 0:
                tracks[k] = slot
                memory[slot] = F.normalize(memory[slot] * w + current[k] * (1 - w), p=2, dim=0)
        for k, slot in enumerate(x.tolist()):
            if slot < 0:
                tracks[k] = len(memory)
                memory.append(current[k])
        return tracks
