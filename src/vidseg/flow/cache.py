"""A flow cache on disk: each flow is computed once, written atomically as ``.flo``, and reused.

Layout: ``<root>/<fingerprint>/<video>/<stem_t>_<stem_t1>.flo``, where the fingerprint names the backend and
its settings (RAFT: weights digest, iterations, padding; DIS: preset). The flow depends only on the frames,
so one cache serves every run and every model scored on the same dataset (use one cache folder per
dataset). :func:`fill_flow_cache` computes the missing flows of many frame pairs in parallel processes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidseg.errors import ConfigError, DataError
from vidseg.fileio import read_image
from vidseg.flow.backends import read_flo, write_flo


def backend_fingerprint(backend: Any) -> str:
    """The name under which a backend's flows are cached; ConfigError if the backend has none."""
    fingerprint = getattr(backend, "fingerprint", None)
    if fingerprint is not None:
        return fingerprint()
    preset = getattr(backend, "preset", None)
    if type(backend).__name__ == "DISFlow" and preset is not None:
        return f"dis-{preset}"
    raise ConfigError(f"a flow cache needs a backend that names its settings (RAFT or DIS), not {type(backend).__name__}")


class CachedFlow:
    """Wrap a flow backend with an on-disk cache.

    Args:
        backend: a flow backend (e.g. :class:`~vidseg.flow.raft_backend.RAFTFlow`).
        root: cache folder (created on first write).

    Attributes:
        hits, misses: flows read from / written to the cache by this object.
    """

    def __init__(self, backend: Any, root: str | os.PathLike) -> None:
        self.backend = backend
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise DataError(self.root, "flow cache path exists and is not a folder")
        self.folder = self.root / backend_fingerprint(backend)
        self.needs_frames = getattr(backend, "needs_frames", True)
        self.hits = self.misses = 0

    def path(self, video: str, stem_t: str, stem_t1: str) -> Path:
        """Cache file of the flow from frame ``stem_t`` to ``stem_t1`` of ``video``."""
        return self.folder / video / f"{stem_t}_{stem_t1}.flo"

    def __contains__(self, key: tuple[str, str, str]) -> bool:
        return self.path(*key).is_file()

    def reading_only(self) -> CachedFlow:
        """A copy that only reads the cache (``needs_frames`` False: the caller need not decode frames)."""
        reader = CachedFlow(self.backend, self.root)
        reader.needs_frames = False
        return reader

    def __call__(self, frame_t: np.ndarray | None, frame_t1: np.ndarray | None, *, video: str = "",
                 stem_t: str = "", stem_t1: str = "") -> np.ndarray:
        """Cached flow [H, W, 2] from frame t to t+1 (computed and stored on a miss)."""
        if not video or not stem_t or not stem_t1:
            raise ConfigError("a cached flow needs the video and both frame stems")
        path = self.path(video, stem_t, stem_t1)
        if path.is_file():
            flow = read_flo(path)
            if frame_t is None or flow.shape[:2] == frame_t.shape[:2]:
                self.hits += 1
                return flow
        if frame_t is None or frame_t1 is None:
            raise DataError(path, "flow not in the cache, and no frames to compute it from")
        flow = self.backend(frame_t, frame_t1, video=video, stem_t=stem_t, stem_t1=stem_t1)
        write_flo(path, flow)
        self.misses += 1
        return flow


@dataclass(frozen=True)
class FramePair:
    """Two consecutive frames of one video (image files) whose flow is wanted."""

    video: str
    stem_t: str
    stem_t1: str
    path_t: str
    path_t1: str


_WORKER_CACHE: list[CachedFlow] = []  # the cache of a worker process (its backend loads its model once)


def _pair_job(pair: FramePair, cache: CachedFlow | None = None) -> str:
    cache = cache if cache is not None else _WORKER_CACHE[0]
    frame_t = read_image(pair.path_t, mode="RGB")
    frame_t1 = read_image(pair.path_t1, mode="RGB")
    if frame_t.shape != frame_t1.shape:
        raise DataError(pair.path_t1, f"frame size {frame_t1.shape[1]}x{frame_t1.shape[0]} differs from "
                                      f"{Path(pair.path_t).name}'s {frame_t.shape[1]}x{frame_t.shape[0]} (W x H)")
    cache(frame_t, frame_t1, video=pair.video, stem_t=pair.stem_t, stem_t1=pair.stem_t1)
    return pair.video


def _worker_init(cache: CachedFlow) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER_CACHE[:] = [cache]


def fill_flow_cache(cache: CachedFlow, pairs: Sequence[FramePair], *, workers: int = 1,
                    progress: bool = True) -> int:
    """Compute the flows of ``pairs`` missing from ``cache``, spread over ``workers`` processes.

    Args:
        cache: the cache to fill.
        pairs: frame pairs (any order; each is independent).
        workers: processes (1 = in this process); each worker uses one torch thread.
        progress: show a tqdm bar (pairs/s).

    Returns:
        the number of flows computed.
    """
    from tqdm import tqdm

    todo = [p for p in pairs if (p.video, p.stem_t, p.stem_t1) not in cache]
    bar = tqdm(total=len(todo), desc="flow", unit="pair", disable=not progress or not todo, dynamic_ncols=True)
    try:
        if workers <= 1 or len(todo) <= 1:
            for pair in todo:
                _pair_job(pair, cache)
                bar.update(1)
        else:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(min(workers, len(todo)), initializer=_worker_init,
                                              initargs=(cache,)) as pool:
                for _ in pool.imap_unordered(_pair_job, todo, chunksize=1):
                    bar.update(1)
    finally:
        bar.close()
    return len(todo)
