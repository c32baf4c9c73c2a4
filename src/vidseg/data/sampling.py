"""Clip samplers: which frames of a video form a training clip, and which clip serves each test target.

Every sampler answers two questions about a video of ``num_frames`` frames:

* ``sample_train(num_frames, rng)``: the frame indices (into the video, 0-based) of one random training
  clip, or ``None`` when the video is too short for the method (the dataset then draws another video, as
  mmseg does).
* ``test_clip(t, num_frames)``: the frame indices of the clip whose target is frame ``t``. ``test_clips``
  lists the clips of a whole video (one per target, or per non-overlapping chunk for Clip-PanoFCN).

Clips are ordered with the target LAST. The other frames come in the order the official code stacks them:
CFFM ``[t-9, t-6, t-3, t]`` (past to present), TCB ``[t+3, t+6, t+9, t]`` (its ``[supports..., target]``
stack; TCB's blending is a mean, so the order of the supports does not change its output). When a training
clip is drawn from a reversed frame list, its indices still refer to the original video, so a reversed CFFM
clip reads ``[t+9, t+6, t+3, t]``.

Facts (``specs/models.md``): TCB train/test rules §1.5, CFFM train/test rules §2.5-§2.6, Clip-PanoFCN §4.3-4.4,
STCNN §5.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from vidseg.errors import ConfigError

Indices = tuple[int, ...]

# What TCB's test rule does with supports before frame 0 (see :class:`TCBSampler`).
SHORT_VIDEO_RULES = ("clamp", "wrap")

# CFFM's official test-time clips for the first frames (VSS-CFFM, test pipeline; spec §2.6).
CFFM_EARLY_CLIPS: dict[int, Indices] = {
    3: (0, 1, 2, 3),
    4: (0, 2, 3, 4),
    5: (0, 2, 4, 5),
    6: (0, 2, 4, 6),
    7: (0, 3, 5, 7),
    8: (0, 3, 6, 8),
}


@runtime_checkable
class ClipSampler(Protocol):
    """What a dataset and the streaming predictor need from a sampler."""

    def sample_train(self, num_frames: int, rng: np.random.Generator) -> Indices | None:
        """Indices of one random training clip (target last), or None if the video is too short."""

    def test_clip(self, t: int, num_frames: int) -> Indices:
        """Indices of the clip whose target is frame ``t`` (target last)."""

    def test_clips(self, num_frames: int) -> list[Indices]:
        """All test clips of a video of ``num_frames`` frames."""


def _check_dilations(dilations: Sequence[int]) -> tuple[int, ...]:
    dil = tuple(int(d) for d in dilations)
    if not dil or any(d <= 0 for d in dil):
        raise ValueError(f"dilations must be positive integers, got {dilations!r}")
    return dil


def _reverse_maybe(rng: np.random.Generator, reverse_prob: float) -> bool:
    """Draw whether the frame list is reversed (one uniform draw, so the stream of draws stays fixed)."""
    return bool(rng.random() < reverse_prob)


def _to_original(positions: Sequence[int], num_frames: int, reversed_: bool) -> Indices:
    """Positions in the (possibly reversed) frame list -> indices in the video."""
    if reversed_:
        return tuple(num_frames - 1 - p for p in positions)
    return tuple(int(p) for p in positions)


def _check_target(t: int, num_frames: int) -> None:
    if not 0 <= t < num_frames:
        raise IndexError(f"target frame {t} outside a video of {num_frames} frames")


class _EveryFrameATarget:
    """Test clips of samplers whose every frame is a target with its own clip (``test_clip``)."""

    def test_clip(self, t: int, num_frames: int) -> Indices:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def test_clips(self, num_frames: int) -> list[Indices]:
        return [self.test_clip(t, num_frames) for t in range(num_frames)]


@dataclass(frozen=True)
class TCBSampler(_EveryFrameATarget):
    """TCB (VSPW, ``dataset2.py``): target t and supports at t+3, t+6, t+9.

    Train: with probability ``reverse_prob`` the frame list is reversed; t is uniform over ``list[:-max(d)]``;
    the supports are t+d in the (possibly reversed) list, so they are future or past frames 50/50.
    Test (official rule): supports t+d unless ``t + max(d) >= num_frames``, then t-d. In short videos t-d
    can be negative; ``short_video`` says what happens then:

    * ``"clamp"`` (default, for user videos): the support is frame 0 (``max(t - d, 0)``).
    * ``"wrap"`` (the official ``TestDataset_longclip``, for parity on benchmarks): Python list indexing wraps
      a negative index to the end of the video, ``t - d + num_frames`` (9 frames, target 0: supports
      [6, 3, 0]). This only happens in videos of at most ``2 * max(d) - 1`` frames (17); in videos of at most
      ``max(d) - 1`` frames (8) the official code fails with an IndexError, and so does this rule.

    Args:
        dilations: support distances, default (3, 6, 9).
        reverse_prob: probability of reversing the frame list in training.
        short_video: ``"clamp"`` or ``"wrap"`` (above).
    """

    dilations: tuple[int, ...] = (3, 6, 9)
    reverse_prob: float = 0.5
    short_video: str = "clamp"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", _check_dilations(self.dilations))
        if self.short_video not in SHORT_VIDEO_RULES:
            raise ValueError(f"short_video must be one of {SHORT_VIDEO_RULES}, got {self.short_video!r}")

    @property
    def clip_length(self) -> int:
        return len(self.dilations) + 1

    def sample_train(self, num_frames: int, rng: np.random.Generator) -> Indices | None:
        span = max(self.dilations)
        rev = _reverse_maybe(rng, self.reverse_prob)
        if num_frames <= span:
            return None
        t = int(rng.integers(0, num_frames - span))
        return _to_original([t + d for d in self.dilations] + [t], num_frames, rev)

    def test_clip(self, t: int, num_frames: int) -> Indices:
        _check_target(t, num_frames)
        if t + max(self.dilations) < num_frames:
            supports = [t + d for d in self.dilations]
        elif self.short_video == "clamp":
            supports = [max(t - d, 0) for d in self.dilations]
        else:
            if num_frames < max(self.dilations):
                raise IndexError(f"TCB's official test rule needs videos of at least {max(self.dilations)} "
                                 f"frames (the official loader fails on {num_frames}); use short_video='clamp'")
            supports = [t - d if t >= d else t - d + num_frames for d in self.dilations]
        return (*supports, t)


@dataclass(frozen=True)
class CFFMSampler(_EveryFrameATarget):
    """CFFM (VSS-CFFM ``CustomDataset_video2``): clip [t-9, t-6, t-3, t].

    Train: with probability ``reverse_prob`` the frame list is reversed; t is uniform over positions
    ``>= max(d)``; videos with at most ``max(d)`` frames give None.
    Test: every frame is a target with clip [t-9, t-6, t-3, t]; for t < 9 the official hard-coded clips
    (:data:`CFFM_EARLY_CLIPS`) and, for t < 3, the single frame [t] (the head then returns its single-frame
    MLP prediction). With dilations other than (9, 6, 3) the early frames (t < max(d)) use [t] alone.

    Args:
        dilations: distances of the reference frames, farthest first, default (9, 6, 3).
        reverse_prob: probability of reversing the frame list in training.
    """

    dilations: tuple[int, ...] = (9, 6, 3)
    reverse_prob: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", _check_dilations(self.dilations))

    @property
    def clip_length(self) -> int:
        return len(self.dilations) + 1

    def sample_train(self, num_frames: int, rng: np.random.Generator) -> Indices | None:
        span = max(self.dilations)
        rev = _reverse_maybe(rng, self.reverse_prob)
        if num_frames <= span:
            return None
        t = int(rng.integers(span, num_frames))
        return _to_original([t - d for d in self.dilations] + [t], num_frames, rev)

    def test_clip(self, t: int, num_frames: int) -> Indices:
        _check_target(t, num_frames)
        span = max(self.dilations)
        if t >= span:
            return (*(t - d for d in self.dilations), t)
        if self.dilations == (9, 6, 3) and t in CFFM_EARLY_CLIPS:
            return CFFM_EARLY_CLIPS[t]
        return (t,)


@dataclass(frozen=True)
class ConsecutiveSampler:
    """Clip-PanoFCN (VIPSeg): ``length`` consecutive frames.

    Train: start uniform in ``[0, num_frames - length)``; a video shorter than ``length`` repeats its last
    frame. Test: non-overlapping clips [0..c-1], [c..2c-1], ...; the last one may be shorter. Every frame of a
    test clip is a target (the clip is predicted jointly), so ``test_clip(t)`` is the chunk containing t.

    Args:
        length: frames per clip (``TRAIN_CLIPNUM``, default 3).
    """

    length: int = 3

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"clip length must be >= 1, got {self.length}")

    @property
    def clip_length(self) -> int:
        return self.length

    def sample_train(self, num_frames: int, rng: np.random.Generator) -> Indices | None:
        if num_frames < 1:
            return None
        high = num_frames - self.length
        start = int(rng.integers(0, high)) if high > 0 else 0
        return tuple(min(start + i, num_frames - 1) for i in range(self.length))

    def test_clip(self, t: int, num_frames: int) -> Indices:
        _check_target(t, num_frames)
        start = (t // self.length) * self.length
        return tuple(range(start, min(start + self.length, num_frames)))

    def test_clips(self, num_frames: int) -> list[Indices]:
        return [tuple(range(s, min(s + self.length, num_frames))) for s in range(0, num_frames, self.length)]


@dataclass(frozen=True)
class PreviousFramesSampler(_EveryFrameATarget):
    """STCNN: the ``delta`` previous frames [t-delta .. t-1] then the target t.

    Early frames pad with repeats: indices below 0 become frame 0 (spec §5.5: for t = 1..3 the padded input
    includes frame 0 repeated; a clip of frame 0 repeats frame 0). Train: t uniform over the whole video.

    Args:
        delta: number of previous frames (``--frame_nums``, default 4).
    """

    delta: int = 4

    def __post_init__(self) -> None:
        if self.delta < 1:
            raise ValueError(f"delta must be >= 1, got {self.delta}")

    @property
    def clip_length(self) -> int:
        return self.delta + 1

    def sample_train(self, num_frames: int, rng: np.random.Generator) -> Indices | None:
        if num_frames < 1:
            return None
        return self.test_clip(int(rng.integers(0, num_frames)), num_frames)

    def test_clip(self, t: int, num_frames: int) -> Indices:
        _check_target(t, num_frames)
        return (*(max(t - k, 0) for k in range(self.delta, 0, -1)), t)


@dataclass(frozen=True)
class SingleFrameSampler:
    """Image models: the clip is the target frame alone; training draws it uniformly."""

    @property
    def clip_length(self) -> int:
        return 1

    def sample_train(self, num_frames: int, rng: np.random.Generator) -> Indices | None:
        if num_frames < 1:
            return None
        return (int(rng.integers(0, num_frames)),)

    def test_clip(self, t: int, num_frames: int) -> Indices:
        _check_target(t, num_frames)
        return (t,)

    def test_clips(self, num_frames: int) -> list[Indices]:
        return [(t,) for t in range(num_frames)]


@dataclass(frozen=True)
class OffsetSampler(_EveryFrameATarget):
    """Generic causal rule from a model's ``support_offsets`` (e.g. (-9, -6, -3)): clip [t+o..., t].

    Offsets that fall outside the video are clamped to its first / last frame. Used by the streaming
    predictor for models without a method-specific rule.
    """

    offsets: tuple[int, ...] = ()

    @property
    def clip_length(self) -> int:
        return len(self.offsets) + 1

    def sample_train(self, num_frames: int, rng: np.random.Generator) -> Indices | None:
        if num_frames < 1:
            return None
        return self.test_clip(int(rng.integers(0, num_frames)), num_frames)

    def test_clip(self, t: int, num_frames: int) -> Indices:
        _check_target(t, num_frames)
        return (*(min(max(t + o, 0), num_frames - 1) for o in self.offsets), t)


SAMPLERS = {
    "tcb": TCBSampler,
    "cffm": CFFMSampler,
    "consecutive": ConsecutiveSampler,
    "previous": PreviousFramesSampler,
    "single": SingleFrameSampler,
}


def build_sampler(name: str, **kwargs) -> ClipSampler:
    """A sampler by name: ``tcb``, ``cffm``, ``consecutive`` (Clip-PanoFCN), ``previous`` (STCNN), ``single``."""
    try:
        cls = SAMPLERS[name]
    except KeyError:
        raise ConfigError(f"unknown clip sampler {name!r}; choose from {', '.join(sorted(SAMPLERS))}") from None
    return cls(**kwargs)
