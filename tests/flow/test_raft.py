"""RAFT: published parameter counts, released-checkpoint loading, and outputs of the official code.

Reference numbers come from running the official code on CPU (/work/official/raft_compare.py): the VSPW copy
of RAFT (VSPW-dataset/VSPW_code RAFT_core, as TC_cal.py calls it: zero padding to a multiple of 8, 20
iterations, test_mode, unpad) for the standard model, and princeton-vl/RAFT core (replicate padding) for
RAFT-small, both with the seeded random weights of ``raft_reference.random_raft_state``. On those inputs
(sizes 131x157, 127x255, 200x301, 129x129, 121x171, 125x133) vidseg's all-pairs flow was identical to the
official one (max |diff| 0) and the on-demand correlation within 8.4e-5 (flows up to 167 px).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidseg.errors import DataError
from vidseg.flow.raft import build_raft
from vidseg.flow.raft_backend import RAFTFlow, load_raft, padding_for

from .raft_reference import random_frames, random_raft_state

# official-code outputs on the tiny input (125x133 frames, seed 105; weights seed 1234 standard / 4321 small),
# (iterations, variant) -> (sum of the flow, flow at [0, 0], [60, 70] and [-1, -1]), float64; one torch thread
OFFICIAL_TINY = {
    (3, "standard"): (346727.928683, [1.100541353225708, 3.06210994720459], [15.570525169372559, 10.324504852294922],
                      [3.731518030166626, 0.4775185286998749]),
    (3, "small"): (65062.606393, [4.787831783294678, 4.653290271759033], [-0.8968278765678406, 11.888203620910645],
                   [-6.887217998504639, 3.119472026824951]),
    (20, "standard"): (1754868.036642, [-1.6881763935089111, 30.83209228515625],
                       [93.53340911865234, 52.22006607055664], [23.316038131713867, -2.356768846511841]),
    (20, "small"): (95333.985974, [25.896467208862305, 36.568511962890625], [-19.194604873657227, 36.31846237182617],
                    [-50.25275421142578, 3.29044508934021]),
}
SEEDS = {"standard": 1234, "small": 4321}


def _weights(tmp_path, variant: str, legacy: bool = False):
    shapes = {k: tuple(v.shape) for k, v in build_raft(variant).state_dict().items()}
    state = {"module." + k: v for k, v in random_raft_state(shapes, SEEDS[variant]).items()}
    path = tmp_path / f"raft-{variant}.pth"
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


def test_parameter_counts_as_published():
    """5,257,536 and 990,162 (the paper's 5.3M / 1.0M; same totals from the official code)."""
    assert sum(p.numel() for p in build_raft("standard").parameters()) == 5_257_536
    assert sum(p.numel() for p in build_raft("small").parameters()) == 990_162
    # the official state dicts have 179 and 106 entries (BN buffers, the shared downsample norm twice)
    assert len(build_raft("standard").state_dict()) == 179
    assert len(build_raft("small").state_dict()) == 106


def _check_tiny(tmp_path, variant: str, iters: int) -> None:
    padding = "zeros" if variant == "standard" else "replicate"  # VSPW RAFT_core / upstream RAFT padders
    flow = RAFTFlow(_weights(tmp_path, variant, legacy=True), corr="all-pairs", iters=iters, padding=padding)
    a, b = random_frames(125, 133, seed=105)
    out = flow(a, b).astype(np.float64)
    assert flow.variant == variant and out.shape == (125, 133, 2)
    total, p00, p6070, plast = OFFICIAL_TINY[iters, variant]
    np.testing.assert_allclose(out[0, 0], p00, atol=1e-4)
    np.testing.assert_allclose(out[60, 70], p6070, atol=1e-4)
    np.testing.assert_allclose(out[-1, -1], plast, atol=1e-4)
    assert abs(out.sum() - total) < 1e-4 * out.size


@pytest.mark.parametrize("variant", ["standard", "small"])
def test_matches_official_code_on_tiny_input(tmp_path, variant):
    _check_tiny(tmp_path, variant, iters=3)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["standard", "small"])
def test_matches_official_code_20_iterations(tmp_path, variant):
    _check_tiny(tmp_path, variant, iters=20)


def test_on_demand_correlation_matches_all_pairs(tmp_path):
    path = _weights(tmp_path, "small")
    a, b = random_frames(129, 131, seed=7)
    full = RAFTFlow(path, corr="all-pairs", iters=3)(a, b)
    lazy = RAFTFlow(path, corr="on-demand", iters=3)(a, b)
    np.testing.assert_allclose(lazy, full, atol=1e-4)


def test_padding_splits_like_the_sintel_padder():
    assert padding_for(131, 157) == (1, 2, 2, 3)
    assert padding_for(480, 853) == (1, 2, 0, 0)
    assert padding_for(720, 1280) == (0, 0, 0, 0)


def test_variant_recognised_and_prefix_removed(tmp_path):
    model = load_raft(_weights(tmp_path, "small"))
    assert model.update_block.mask is None and model.corr_radius == 3
    with pytest.raises(DataError, match="not a RAFT checkpoint"):
        load_raft(_weights(tmp_path, "small"), variant="standard")


def test_segmentation_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "segformer.pth"
    torch.save({"state_dict": {"backbone.conv.weight": torch.zeros(4, 3, 3, 3)}}, path)
    with pytest.raises(DataError, match=r"segformer\.pth: not a RAFT checkpoint"):
        RAFTFlow(path)(*random_frames(128, 128, 0))


def test_truncated_file_is_rejected(tmp_path):
    good = _weights(tmp_path, "small")
    bad = tmp_path / "cut.pth"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.pth"):
        load_raft(bad)
    with pytest.raises(DataError, match=r"missing\.pth: RAFT weights file not found"):
        RAFTFlow(tmp_path / "missing.pth")


def test_bad_frames(tmp_path):
    flow = RAFTFlow(_weights(tmp_path, "small"), iters=1)
    a, _ = random_frames(128, 136, 0)
    _, b = random_frames(128, 144, 0)
    with pytest.raises(DataError, match=r"vid/00002: frame size 144x128 differs"):
        flow(a, b, video="vid", stem_t="00001", stem_t1="00002")
    small = np.zeros((64, 96, 3), np.uint8)
    with pytest.raises(DataError, match="at least 121x121"):
        flow(small, small)
