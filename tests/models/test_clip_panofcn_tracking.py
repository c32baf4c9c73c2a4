"""Inter-clip tracking: lap.lapjv(extend_cost=True, cost_limit) semantics and the embedding memory."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidseg.models.panoptic.tracking import EmbeddingTracker, lapjv_extended

# Outputs of lap 0.5.12 `lap.lapjv(cost, extend_cost=True, cost_limit=0.3)` (x, y), and without the limit,
# recorded by running lap on these matrices (/work/official, outside the repo). In every case but the last the
# limit changes the matching.
LAP_CASES = [
    ([[0.1, 0.25], [0.2, 0.9]], ([0, -1], [0, -1]), ([1, 0], [1, 0])),
    ([[0.5, 0.35], [0.31, 0.6], [0.12, 0.2]], ([-1, -1, 0], [2, -1]), ([1, -1, 0], [2, 0])),
    ([[0.29, 0.31, 0.05], [0.02, 0.3, 0.4]], ([2, 0], [1, -1, 0]), ([2, 0], [1, -1, 0])),
    ([[0.15, 0.16], [0.16, 0.29]], ([1, 0], [1, 0]), ([1, 0], [1, 0])),
]


@pytest.mark.parametrize(("cost", "limited", "unlimited"), LAP_CASES)
def test_lapjv_extended_matches_recorded_lap_outputs(cost, limited, unlimited):
    x, y = lapjv_extended(np.array(cost), 0.3)
    assert (x.tolist(), y.tolist()) == limited
    x, y = lapjv_extended(np.array(cost), 1e9)
    assert (x.tolist(), y.tolist()) == unlimited


def brute_best(cost: np.ndarray, limit: float) -> float:
    """Minimum over all partial matchings of matched cost + limit/2 per unmatched row and column."""
    n, m = cost.shape
    best = limit / 2 * (n + m)
    for k in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                total = sum(cost[r, c] for r, c in zip(rows, cols)) + limit / 2 * (n + m - 2 * k)
                best = min(best, total)
    return best


def test_lapjv_extended_is_optimal_with_unmatched_at_half_limit():
    rng = np.random.default_rng(0)
    for _ in range(60):
        n, m = rng.integers(1, 5, size=2)
        cost = rng.random((n, m)) * 0.6
        x, y = lapjv_extended(cost, 0.3)
        matched = [(r, c) for r, c in enumerate(x) if c >= 0]
        assert all(y[c] == r for r, c in matched)
        assert all(cost[r, c] <= 0.3 for r, c in matched)  # a pair above the limit is never worth matching
        total = sum(cost[r, c] for r, c in matched) + 0.15 * (n + m - 2 * len(matched))
        assert total == pytest.approx(brute_best(cost, 0.3))


def _unit(*v):
    return F.normalize(torch.tensor(v, dtype=torch.float64), dim=0)


def test_tracker_memory_update_new_ids_and_new_categories():
    tracker = EmbeddingTracker(cost_limit=0.3, memory_weight=0.8)
    a, b = _unit(1, 0, 0), _unit(0, 1, 0)
    assert tracker.update({}) == {} and tracker.memory == {}  # a clip without things initialises nothing
    assert tracker.update({5: [a, b]}) == {5: [0, 1]}         # first clip with things: its own indices
    a2 = _unit(0.9, 0.1, 0)        # close to a (cost ~0.003)
    far = _unit(0, 0, 1)           # cos 0 with both: cost 0.5 > 0.3 -> new track
    c = _unit(1, 1, 1)
    tracks = tracker.update({5: [far, a2], 7: [c]})
    assert tracks == {5: [2, 0], 7: [0]}                      # matched keeps the slot, unmatched gets len(memory)
    expected = F.normalize(0.8 * a + 0.2 * a2, dim=0)
    torch.testing.assert_close(tracker.memory[5][0], expected)
    torch.testing.assert_close(tracker.memory[5][1], b)       # untouched
    torch.testing.assert_close(tracker.memory[5][2], far)
    assert tracker.num_tracks() == 4
    tracker.reset()
    assert tracker.num_tracks() == 0


def test_tracker_cost_limit_changes_the_assignment():
    """Two memory tracks, two new instances: the limit leaves a costly pair unmatched and starts a new track."""
    tracker = EmbeddingTracker()
    m0, m1 = _unit(1, 0), _unit(0, 1)
    tracker.update({1: [m0, m1]})
    # c0 = m0 (cost 0); c1 has cos -0.6 / -0.8 with m0 / m1 (cost 0.8 / 0.9): under the limit it is unmatched
    c0 = _unit(1, 0)
    c1 = _unit(-0.6, -0.8)
    assert tracker.update({1: [c0, c1]}) == {1: [0, 2]}
    no_limit = EmbeddingTracker(cost_limit=1e9)
    no_limit.update({1: [m0, m1]})
    assert no_limit.update({1: [c0, c1]}) == {1: [0, 1]}
