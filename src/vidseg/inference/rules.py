"""Which frames form the clip of each target at inference, and how far a stream must look back / ahead.

The rules are the test rules of :mod:`vidseg.data.sampling`, chosen from the model:

* ``online`` (causal): CFFM-style models (``support_offsets == (-9, -6, -3)`` and a ``num_clips``
  attribute) use CFFM's official rule with the hard-coded clips of the first frames; other models use their
  ``support_offsets`` with indices clamped into the video (TCB online: ``max(t - d, 0)``).
* ``offline``: models with ``offline_support_offsets`` (TCB) use TCB's official test rule (future supports
  ``t + d`` unless ``t + max(d) >= len``, then ``t - d``); other models fall back to their online rule.

A rule may depend on the video length only through "does the clip fit"; the streaming predictor relies on
that to decide target ``t`` once frame ``t + lookahead`` has arrived, before the video's end is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidseg.data.sampling import CFFMSampler, ClipSampler, OffsetSampler, TCBSampler
from vidseg.errors import ConfigError

MODES = ("online", "offline")
_PROBE_LENGTH = 1000
_PROBE_TARGETS = 64


def rule_for_model(model: object, mode: str = "online") -> ClipSampler:
    """The test-time clip rule of ``model`` in ``mode`` (see module docstring)."""
    if mode not in MODES:
        raise ConfigError(f"inference mode must be 'online' or 'offline', got {mode!r}")
    offsets = tuple(int(o) for o in getattr(model, "support_offsets", ()))
    offline = tuple(int(o) for o in getattr(model, "offline_support_offsets", ()) or ())
    if mode == "offline" and offline:
        if any(o <= 0 for o in offline):
            raise ConfigError(f"offline_support_offsets must be positive, got {offline}")
        return TCBSampler(dilations=offline)
    if offsets and all(o < 0 for o in offsets) and hasattr(model, "num_clips") \
            and len(offsets) + 1 == int(model.num_clips):
        return CFFMSampler(dilations=tuple(-o for o in offsets))
    return OffsetSampler(offsets)


@dataclass(frozen=True)
class Reach:
    """How far a rule reaches from the target: ``back`` frames into the past, ``ahead`` into the future."""

    back: int
    ahead: int


def rule_reach(rule: ClipSampler) -> Reach:
    """Measure a rule's reach by probing targets at the start, middle and end of a long video."""
    n = _PROBE_LENGTH
    targets = [*range(_PROBE_TARGETS), *range(n // 2 - _PROBE_TARGETS, n // 2), *range(n - _PROBE_TARGETS, n)]
    back = ahead = 0
    for t in targets:
        clip = rule.test_clip(t, n)
        back = max(back, t - min(clip))
        ahead = max(ahead, max(clip) - t)
    return Reach(back, ahead)
