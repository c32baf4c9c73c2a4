"""Deterministic, resumable, rank-aware sampling for iteration-based training.

The global sample stream is a concatenation of epochs; epoch ``e`` is a permutation of the dataset drawn from
``seed + e``. Optimisation step ``i`` consumes global positions ``[i*B, (i+1)*B)`` (``B`` = clips per step over
all processes and accumulation steps). Each position ``p`` also gets its own augmentation seed, derived from
``(seed, p)`` only. Hence the clips of a step, and their random crops/flips, do not depend on the number of
processes, and a resumed run continues exactly where it stopped (the "data position" is the step index).

Micro-batch ``m`` of step ``i`` on rank ``r`` (``world`` processes, ``accum`` micro-batches) takes positions
``i*B + m*world*b + r*b + [0, b)`` with ``b = B / (world * accum)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

_MASK = (1 << 63) - 1


def sample_seed(seed: int, position: int) -> int:
    """Augmentation seed of global position ``position`` (a fixed 63-bit mix of both numbers)."""
    return int(np.random.SeedSequence([seed & _MASK, position]).generate_state(2, np.uint32).view(np.uint64)[0]
               & _MASK)


class StepSampler(torch.utils.data.Sampler):
    """Yields micro-batches of ``(dataset_index, augmentation_seed)`` for this rank, from ``start_step`` on.

    Args:
        dataset_len: number of samples in an epoch.
        batch_size: clips per optimisation step over all processes and accumulation steps.
        world_size / rank: the process group.
        grad_accum: micro-batches per step.
        seed: run seed.
        start_step: first step to produce (resume).
        max_steps: last step (exclusive).
    """

    def __init__(self, dataset_len: int, batch_size: int, *, world_size: int = 1, rank: int = 0,
                 grad_accum: int = 1, seed: int = 0, start_step: int = 0, max_steps: int) -> None:
        if dataset_len <= 0:
            raise ValueError("cannot sample from an empty dataset")
        if batch_size % (world_size * grad_accum):
            raise ValueError(f"batch_size {batch_size} must be divisible by world_size x grad_accum "
                             f"({world_size} x {grad_accum})")
        self.n = dataset_len
        self.batch_size = batch_size
        self.world_size = world_size
        self.rank = rank
        self.grad_accum = grad_accum
        self.seed = seed
        self.start_step = start_step
        self.max_steps = max_steps
        self.micro = batch_size // (world_size * grad_accum)
        self._perm_epoch = -1
        self._perm: np.ndarray = np.empty(0, dtype=np.int64)

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng(self.seed + epoch).permutation(self.n)
            self._perm_epoch = epoch
        return int(self._perm[offset])

    def positions(self, step: int, micro_index: int) -> range:
        """Global positions of micro-batch ``micro_index`` of ``step`` on this rank."""
        start = step * self.batch_size + (micro_index * self.world_size + self.rank) * self.micro
        return range(start, start + self.micro)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.max_steps):
            for m in range(self.grad_accum):
                yield [(self._index(p), sample_seed(self.seed, p)) for p in self.positions(step, m)]

    def __len__(self) -> int:
        return max(self.max_steps - self.start_step, 0) * self.grad_accum


class SeededDataset(Dataset):
    """Wraps a map-style dataset so that item ``(index, seed)`` is drawn under that seed.

    If the wrapped dataset has ``get(index, rng)`` (``rng`` a ``numpy.random.Generator``) it is called; if it
    has ``set_epoch`` (:class:`vidseg.data.dataset.ClipDataset`, whose item ``i`` draws from
    ``default_rng([seed, epoch, i])``) the seed is passed as the epoch; otherwise Python's, numpy's and torch's global generators are seeded for the call and restored afterwards,
    so loading data never disturbs the training process's random state.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> Any:
        index, seed = item
        if hasattr(self.dataset, "get"):
            return self.dataset.get(index, np.random.default_rng(seed))
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(seed)
            return self.dataset[index]
        py, npy = random.getstate(), np.random.get_state()
        try:
            random.seed(seed)
            np.random.seed(seed % (1 << 32))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return self.dataset[index]
        finally:
            random.setstate(py)
            np.random.set_state(npy)
