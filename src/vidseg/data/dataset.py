"""A torch Dataset of clips: per-video frame lists + a clip sampler + a clip-consistent transform.

The videos are any objects with the reader interface of :mod:`vidseg.data.layout` (``VideoRecord`` and the
per-benchmark subclasses): ``name``, ``len(video)`` (or ``num_frames``), ``load_frame(i) -> uint8 [H, W, 3]``
and, when labelled, ``load_label(i) -> uint8 [H, W]`` (classes 0..K-1, 255 = ignore).

Randomness: item ``i`` of epoch ``e`` draws everything (reversal, target, scale, crop, flip, colour) from
``numpy.random.default_rng([seed, e, i])``. The clip therefore depends only on (seed, epoch, index), not on
the worker or rank that loads it, so DDP runs and resumed runs see the same data.

Example::

    ds = ClipDataset(VSPWDataset(root, "train").videos, CFFMSampler(), cffm_train_transform(), repeat=50)
    loader = DataLoader(ds, batch_size=2, shuffle=True, collate_fn=ClipBatch.collate)
    ds.set_epoch(epoch)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from vidseg.data.sampling import ClipSampler
from vidseg.data.transforms import ClipData, Compose, eval_transform
from vidseg.errors import DataError
from vidseg.structures import Clip

# how many other videos a training item tries when its video is too short for the sampler
_MAX_REDRAWS = 100


class Video(Protocol):
    """What the dataset needs from a reader's video record."""

    name: str

    def load_frame(self, index: int) -> np.ndarray: ...


def video_length(video: Any) -> int:
    """Number of frames of a reader's video record (``len()`` or ``num_frames``)."""
    if hasattr(video, "__len__"):
        return len(video)
    return int(video.num_frames)


def video_has_labels(video: Any) -> bool:
    """True when the record can load labels (``has_labels`` where the reader says, else ``load_label``)."""
    flag = getattr(video, "has_labels", None)
    if flag is not None:
        return bool(flag)
    return hasattr(video, "load_label")


class ClipDataset(torch.utils.data.Dataset):
    """Clips of videos for training (random clips) or evaluation (every test clip of every video).

    Args:
        videos: reader video records (see module docstring).
        sampler: a clip sampler (:mod:`vidseg.data.sampling`).
        transform: a :class:`vidseg.data.transforms.Compose`; default: normalise only.
        train: True: one random clip per video and item (``len = len(videos) * repeat``); False: every clip
            of ``sampler.test_clips`` of every video, in order.
        repeat: times each video appears per epoch in training (mmseg ``RepeatDataset``; CFFM uses 50).
        seed: base seed of the per-item generators.
        with_labels: load labels where the video has them.

    Items are :class:`vidseg.structures.Clip` (frames [T, 3, H, W], labels [T, H, W] or None, target last).
    """

    def __init__(self, videos: Sequence[Any], sampler: ClipSampler, transform: Compose | None = None, *,
                 train: bool = True, repeat: int = 1, seed: int = 0, with_labels: bool = True) -> None:
        if not videos:
            raise ValueError("ClipDataset needs at least one video")
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        self.videos = list(videos)
        self.sampler = sampler
        self.transform = transform if transform is not None else eval_transform()
        self.train = train
        self.repeat = repeat
        self.seed = int(seed)
        self.with_labels = with_labels
        self.epoch = 0
        self._lengths = [video_length(v) for v in self.videos]
        self._test_items: list[tuple[int, tuple[int, ...]]] = []
        if not train:
            for vi, n in enumerate(self._lengths):
                self._test_items.extend((vi, clip) for clip in sampler.test_clips(n))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random clips ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.train:
            return len(self.videos) * self.repeat
        return len(self._test_items)

    def generator(self, index: int) -> np.random.Generator:
        """The generator item ``index`` of the current epoch draws from."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> Clip:
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} outside a dataset of {len(self)} clips")
        rng = self.generator(index)
        if self.train:
            vi, clip = self._sample_train(index % len(self.videos), rng)
        else:
            vi, clip = self._test_items[index]
        return self.load_clip(vi, clip, rng)

    def _sample_train(self, vi: int, rng: np.random.Generator) -> tuple[int, tuple[int, ...]]:
        for _ in range(_MAX_REDRAWS):
            clip = self.sampler.sample_train(self._lengths[vi], rng)
            if clip is not None:
                return vi, clip
            vi = int(rng.integers(0, len(self.videos)))  # too short: another video, as mmseg does
        raise DataError(getattr(self.videos[vi], "name", "?"),
                        f"no video long enough for {type(self.sampler).__name__} after {_MAX_REDRAWS} draws")

    def load_clip(self, vi: int, indices: Sequence[int], rng: np.random.Generator | None = None) -> Clip:
        """Read frames ``indices`` of video ``vi`` and transform them as one clip."""
        video = self.videos[vi]
        frames = [video.load_frame(i) for i in indices]
        labels = None
        if self.with_labels and video_has_labels(video):
            labels = [video.load_label(i) for i in indices]
        data = ClipData(frames, labels, tuple(int(i) for i in indices), str(getattr(video, "name", vi)))
        return self.transform(data, rng if rng is not None else np.random.default_rng(self.seed))
