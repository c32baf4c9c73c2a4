"""Instance association: IoU against a brute-force loop, Hungarian optimality, tracks through permuted ids."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vidseg.annotate import associate_pair, instance_iou, track_instances


def _brute_iou(a: np.ndarray, b: np.ndarray, i: int, j: int) -> float:
    inter = np.logical_and(a == i, b == j).sum()
    union = np.logical_or(a == i, b == j).sum()
    return inter / union if union else 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_iou_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, size=(6, 7))
    b = rng.integers(0, 5, size=(6, 7))
    iou, pa, pb = instance_iou(a, b)
    for (r, i), (c, j) in itertools.product(enumerate(pa), enumerate(pb)):
        assert np.isclose(iou[r, c], _brute_iou(a, b, i, j))


def test_hungarian_beats_greedy_and_respects_categories() -> None:
    # prev: instance 1 covers cols 0-3, instance 2 covers cols 4-5
    prev = np.zeros((2, 8), int)
    prev[:, 0:4] = 1
    prev[:, 4:6] = 2
    # next: 10 overlaps 1 a little and 2 fully; 11 overlaps 1 well
    nxt = np.zeros((2, 8), int)
    nxt[:, 3:6] = 10
    nxt[:, 0:3] = 11
    cats = {1: 5, 2: 5}
    match = associate_pair(prev, nxt, cats, {10: 5, 11: 5})
    assert match == {10: 2, 11: 1}
    # a category change forbids the match
    match = associate_pair(prev, nxt, cats, {10: 7, 11: 5})
    assert match == {11: 1}


def test_tracks_follow_moving_objects_under_per_frame_relabelling() -> None:
    frames = []
    rng = np.random.default_rng(0)
    for t in range(6):
        ids = np.zeros((20, 30), int)
        ids[2:8, t:t + 6] = 1          # object A moving right
        ids[10:18, 20 - t:26 - t] = 2  # object B moving left
        perm = rng.permutation([3, 9]) # frame-wise ids are arbitrary
        local = np.select([ids == 1, ids == 2], [perm[0], perm[1]], 0)
        frames.append((local, {int(perm[0]): 1, int(perm[1]): 1}))
    tracks = list(track_instances(frames))
    for t, tr in enumerate(tracks):
        assert tr[3, t + 1] == 1 and tr[12, 22 - t] == 2
    assert {int(v) for v in np.unique(np.stack(tracks))} == {0, 1, 2}


def test_unmatched_instance_starts_new_track() -> None:
    a = np.zeros((4, 4), int)
    a[0:2, 0:2] = 1
    b = np.zeros((4, 4), int)
    b[2:4, 2:4] = 1  # no overlap with the previous object
    tracks = list(track_instances([(a, {1: 0}), (b, {1: 0})]))
    assert tracks[0][0, 0] == 1 and tracks[1][3, 3] == 2
