"""Which frames form the clip of each target at inference, and how far a stream must look back / ahead.

The rules are the test rules of :mod:`vidseg.data.sampling`; a model names its rule in ``model.test_rule``
(stated by its registry entry, see :class:`vidseg.models.base.VideoSegmenter`):

* ``"offsets"``: the model's ``support_offsets`` with indices clamped into the video, in both modes.
* ``"cffm"``: online, CFFM's official rule with the hard-coded clips of the first frames; offline falls back
  to the online rule.
* ``"tcb"``: online ``max(t - d, 0)``; offline TCB's official test rule (future supports ``t + d`` from
  ``offline_support_offsets`` unless ``t + max(d) >= len``, then ``t - d``).

A rule may depend on the video length only through "does the clip fit"; the streaming predictor relies on
that to decide target ``t`` once frame ``t + lookahead`` has arrived, before the video's end is known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vidseg.data.sampling import CFFMSampler, ClipSampler, OffsetSampler, TCBSampler
from vidseg.errors import ConfigError
from vidseg.models.base import VideoSegmenter

MODES = ("online", "offline")
_PROBE_LENGTH = 1000
_PROBE_TARGETS = 64


def _offsets(model: VideoSegmenter) -> tuple[int, ...]:
    return tuple(int(o) for o in model.support_offsets)


def offsets_rule(model: VideoSegmenter, mode: str, short_video: str = "clamp") -> ClipSampler:
    """The model's ``support_offsets``, clamped into the video, in either mode."""
    return OffsetSampler(_offsets(model))


def cffm_rule(model: VideoSegmenter, mode: str, short_video: str = "clamp") -> ClipSampler:
    """CFFM's official test clips (dilations from ``support_offsets``), in either mode."""
    return CFFMSampler(dilations=tuple(-o for o in _offsets(model)))


def tcb_rule(model: VideoSegmenter, mode: str, short_video: str = "clamp") -> ClipSampler:
    """Online: the past supports; offline: TCB's official rule over ``offline_support_offsets``, with
    ``short_video`` ``"clamp"`` or ``"wrap"`` (the official loader) for supports before frame 0."""
    offline = tuple(int(o) for o in model.offline_support_offsets)
    if mode == "offline" and offline:
        if any(o <= 0 for o in offline):
            raise ConfigError(f"offline_support_offsets must be positive, got {offline}")
        return TCBSampler(dilations=offline, short_video=short_video)
    return OffsetSampler(_offsets(model))


# rule name (a model's ``test_rule``) -> (model, mode, short_video) -> sampler
RULES: dict[str, Callable[[VideoSegmenter, str, str], ClipSampler]] = {
    "offsets": offsets_rule,
    "cffm": cffm_rule,
    "tcb": tcb_rule,
}


def rule_for_model(model: VideoSegmenter, mode: str = "online", short_video: str = "clamp") -> ClipSampler:
    """The test-time clip rule of ``model`` in ``mode`` (see module docstring); ``short_video`` is TCB's
    rule for supports before frame 0 (:class:`vidseg.data.sampling.TCBSampler`)."""
    if mode not in MODES:
        raise ConfigError(f"inference mode must be 'online' or 'offline', got {mode!r}")
    if model.test_rule not in RULES:
        raise ConfigError(f"unknown test rule {model.test_rule!r}; known: {', '.join(sorted(RULES))}")
    return RULES[model.test_rule](model, mode, short_video)


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
