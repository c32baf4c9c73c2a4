"""Clip samplers against the official rules (spec models.md §1.5, §2.5-2.6, §4.3-4.4, §5.5)."""

from __future__ import annotations

import numpy as np
import pytest

from vidseg.data.sampling import (
    CFFMSampler,
    ConsecutiveSampler,
    OffsetSampler,
    PreviousFramesSampler,
    SingleFrameSampler,
    TCBSampler,
    build_sampler,
)
from vidseg.errors import ConfigError


def _draws(sampler, n, num_frames, seed=0):
    rng = np.random.default_rng(seed)
    return [sampler.sample_train(num_frames, rng) for _ in range(n)]


def test_tcb_train_supports_are_future_or_past_in_the_list():
    n = 30
    clips = _draws(TCBSampler(), 2000, n)
    forward = backward = 0
    targets = set()
    for clip in clips:
        assert len(clip) == 4
        *sup, t = clip
        diffs = [s - t for s in sup]
        assert diffs in ([3, 6, 9], [-3, -6, -9])
        forward += diffs[0] > 0
        backward += diffs[0] < 0
        assert all(0 <= i < n for i in clip)
        targets.add((t, diffs[0] > 0))
    assert 0.45 < forward / len(clips) < 0.55
    # forward: t uniform over list[:-9] = 0..20; reversed: position p -> n-1-p, so targets 9..29
    assert {t for t, f in targets if f} == set(range(0, n - 9))
    assert {t for t, f in targets if not f} == set(range(9, n))


def test_tcb_train_custom_dilations_and_short_video():
    clips = _draws(TCBSampler(dilations=(1, 2), reverse_prob=0.0), 200, 5)
    assert all(c[0] - c[-1] == 1 and c[1] - c[-1] == 2 for c in clips)
    assert {c[-1] for c in clips} == {0, 1, 2}
    assert TCBSampler().sample_train(9, np.random.default_rng(0)) is None


def test_tcb_test_rule_future_then_past():
    s = TCBSampler()
    assert s.test_clip(0, 20) == (3, 6, 9, 0)
    assert s.test_clip(10, 20) == (13, 16, 19, 10)
    assert s.test_clip(11, 20) == (8, 5, 2, 11)  # 11 + 9 >= 20
    assert s.test_clip(19, 20) == (16, 13, 10, 19)
    assert s.test_clip(2, 5) == (0, 0, 0, 2)  # too short: past supports clamped at frame 0
    for t, clip in enumerate(s.test_clips(25)):
        assert clip[-1] == t
        expect = [t + 3, t + 6, t + 9] if t + 9 < 25 else [t - 3, t - 6, t - 9]
        assert list(clip[:3]) == expect
    with pytest.raises(IndexError):
        s.test_clip(20, 20)


def test_cffm_train_clip_and_reversal():
    n = 25
    clips = _draws(CFFMSampler(), 2000, n, seed=1)
    rev = 0
    targets_fwd, targets_rev = set(), set()
    for clip in clips:
        t = clip[-1]
        diffs = [c - t for c in clip[:3]]
        assert diffs in ([-9, -6, -3], [9, 6, 3])
        if diffs[0] > 0:
            rev += 1
            targets_rev.add(t)
        else:
            targets_fwd.add(t)
    assert 0.45 < rev / len(clips) < 0.55
    assert targets_fwd == set(range(9, n))  # positions >= 9
    assert targets_rev == set(range(0, n - 9))
    assert CFFMSampler().sample_train(9, np.random.default_rng(0)) is None
    assert CFFMSampler().sample_train(10, np.random.default_rng(0)) is not None


def test_cffm_test_rule_early_frames():
    s = CFFMSampler()
    expected = {0: (0,), 1: (1,), 2: (2,), 3: (0, 1, 2, 3), 4: (0, 2, 3, 4), 5: (0, 2, 4, 5), 6: (0, 2, 4, 6),
                7: (0, 3, 5, 7), 8: (0, 3, 6, 8), 9: (0, 3, 6, 9), 15: (6, 9, 12, 15)}
    for t, clip in expected.items():
        assert s.test_clip(t, 30) == clip
    assert s.test_clips(30)[29] == (20, 23, 26, 29)
    # other dilations: single frame until the full clip exists
    s2 = CFFMSampler(dilations=(4, 2))
    assert s2.test_clip(3, 10) == (3,)
    assert s2.test_clip(4, 10) == (0, 2, 4)


def test_consecutive_sampler():
    s = ConsecutiveSampler(3)
    clips = _draws(s, 500, 10)
    starts = {c[0] for c in clips}
    assert starts == set(range(0, 7))  # U[0, len-3)
    assert all(c == (c[0], c[0] + 1, c[0] + 2) for c in clips)
    assert s.sample_train(2, np.random.default_rng(0)) == (0, 1, 1)  # short video repeats the last frame
    assert s.sample_train(1, np.random.default_rng(0)) == (0, 0, 0)
    assert s.test_clips(8) == [(0, 1, 2), (3, 4, 5), (6, 7)]
    assert s.test_clip(7, 8) == (6, 7)


def test_previous_frames_sampler():
    s = PreviousFramesSampler(4)
    assert s.test_clip(0, 10) == (0, 0, 0, 0, 0)
    assert s.test_clip(2, 10) == (0, 0, 0, 1, 2)
    assert s.test_clip(7, 10) == (3, 4, 5, 6, 7)
    clips = _draws(s, 200, 10)
    assert all(c == s.test_clip(c[-1], 10) for c in clips)


def test_single_and_offset_samplers():
    assert SingleFrameSampler().test_clips(3) == [(0,), (1,), (2,)]
    assert {c[0] for c in _draws(SingleFrameSampler(), 200, 4)} == {0, 1, 2, 3}
    s = OffsetSampler((-2, 1))
    assert s.test_clip(0, 5) == (0, 1, 0)
    assert s.test_clip(4, 5) == (2, 4, 4)


def test_reproducible_with_seed_and_build():
    a = _draws(build_sampler("cffm"), 50, 40, seed=7)
    b = _draws(CFFMSampler(), 50, 40, seed=7)
    assert a == b
    with pytest.raises(ConfigError):
        build_sampler("nope")
    with pytest.raises(ValueError):
        TCBSampler(dilations=(0, 3))
