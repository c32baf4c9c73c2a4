"""Clip-PanoFCN targets on hand-made masks, checked against rules written out here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tests.models import panofcn_case as case

from vidseg.categories import vipseg_categories
from vidseg.models.panoptic.targets import (
    INSTANCE_SCALES,
    TargetConfig,
    build_targets,
    gaussian_radius,
    level_shapes_of,
)

CFG = case.CFG


def _expected_levels(scale: float) -> list[int]:
    return [i for i, (lo, hi) in enumerate(INSTANCE_SCALES) if lo <= scale <= hi]


def _radius(w: float, h: float, o: float = 0.7) -> float:
    """CenterNet's three quadratic roots, written out in float64."""
    r1 = ((h + w) + math.sqrt((h + w) ** 2 - 4 * w * h * (1 - o) / (1 + o))) / 2
    r2 = (2 * (h + w) + math.sqrt(4 * (h + w) ** 2 - 16 * (1 - o) * w * h)) / 2
    r3 = (-2 * o * (h + w) + math.sqrt(4 * o * o * (h + w) ** 2 - 16 * o * (o - 1) * w * h)) / 2
    return min(r1, r2, r3)


@pytest.mark.parametrize("wh", [(3.0, 4.0), (10.0, 10.0), (37.5, 12.25), (100.0, 3.0)])
def test_gaussian_radius_formula(wh):
    got = float(gaussian_radius(torch.tensor([wh], dtype=torch.float64), 0.7)[0])
    assert got == pytest.approx(_radius(*wh), rel=1e-12)


# one square object per size; side s -> inclusive extent s - 1 -> scale s - 1
@pytest.mark.parametrize("side", [21, 49, 101, 201, 401, 1001])
def test_one_object_per_level_range(side):
    size = 1024 if side > 500 else 512
    lab = torch.full((1, 1, size, size), case.pid(0), dtype=torch.long)
    y0 = x0 = 8
    lab[0, 0, y0:y0 + side, x0:x0 + side] = case.pid(3, 1)  # thing channel 1
    shapes = level_shapes_of((size, size))
    levels = build_targets(lab, shapes, (size // 4, size // 4), CFG)
    expected = _expected_levels(side - 1)
    assert expected  # every size here is in some range
    for li, lt in enumerate(levels):
        assigned = bool(lt.thing_valid.any())
        assert assigned == (li in expected), (side, li)
        peak = lt.centers[0, 1]
        if not assigned:
            assert float(lt.centers.sum()) == 0.0
            continue
        assert lt.thing_class[0, 0] == 1
        assert float(peak.max()) == 1.0 and float(lt.centers[0, [0, 2]].sum()) == 0.0
        # the 1/4 mask's nonzero pixels: bilinear x1/4 samples input rows 4i+1 and 4i+2
        rows = [i for i in range(size // 4) if y0 <= 4 * i + 2 and 4 * i + 1 < y0 + side]
        cy = sum(rows) / len(rows)
        stride = size // 4 / shapes[li][0]
        yy, xx = np.unravel_index(int(peak.argmax()), peak.shape)
        assert (yy, xx) == (int(cy / stride), int(cy / stride))
        ext = (side - 1) * shapes[li][0] / size
        r = int(max(_radius(ext, ext), 0))
        sigma = (2 * r + 1) / 3
        if r >= 1 and xx + 1 < peak.shape[1]:
            assert float(peak[yy, xx + 1]) == pytest.approx(math.exp(-1 / (2 * sigma * sigma)), rel=1e-6)
        assert int((peak > 0).sum(dim=1).max()) <= 2 * r + 1


def test_object_cut_by_border_and_empty_frame():
    lab = torch.full((1, 3, 64, 96), case.pid(2), dtype=torch.long)
    lab[0, 0, 20:40, 80:96] = case.pid(5, 1)  # cut by the right border
    lab[0, 1, 20:40, 82:96] = case.pid(5, 1)
    lab[0, 2] = 0  # an empty (all-void) frame
    shapes = level_shapes_of((64, 96))
    levels = build_targets(lab, shapes, (16, 24), CFG)
    p3 = levels[0]
    assert p3.thing_valid.shape == (1, 1, 3)
    assert p3.thing_valid[0, 0].tolist() == [True, True, False]
    heat = p3.centers.view(3, 3, 8, 12)[:, 2]  # [T, h, w] of thing channel 2
    assert float(heat[0].max()) == 1.0 and float(heat[1].max()) == 1.0
    assert float(heat[2].sum()) == 0.0
    yy, xx = np.unravel_index(int(heat[0].argmax()), (8, 12))
    assert xx == 10 and yy == 3  # mass centre of the 1/4 mask, x 20.5 -> 10, y 7.5 -> 3 at stride 8
    assert float(p3.thing_masks[0, 0, 2].sum()) == 0.0  # empty frame: empty mask target
    # region channels present: 0 ("thing") and 2 (category 2), in frames 0-1 only; the empty frame has
    # all-zero region targets
    assert p3.stuff_valid.shape[1] == 2 and p3.stuff_valid[0].tolist() == [[True, True, False]] * 2
    assert float(p3.regions.view(3, 5, 8, 12)[2].sum()) == 0.0
    assert float(p3.regions.view(3, 5, 8, 12)[0, 2].max()) == 1.0


def test_empty_clip_has_padded_slots_only():
    lab = torch.zeros(2, 2, 64, 64, dtype=torch.long)
    levels = build_targets(lab, level_shapes_of((64, 64)), (16, 16), CFG)
    for lt in levels:
        assert lt.thing_valid.shape == (2, 1, 2) and not lt.thing_valid.any()
        assert not lt.stuff_valid.any()
        assert float(lt.centers.sum()) == 0.0 and float(lt.regions.sum()) == 0.0
        assert (lt.thing_masks == 255).all()


def test_stuff_regions_are_soft_quarter_maps():
    """A stuff boundary at a row not aligned to 4 gives 0.5 in the 1/4 map (one of the two sampled rows)."""
    lab = torch.full((1, 1, 64, 64), case.pid(0), dtype=torch.long)
    lab[0, 0, 30:] = case.pid(2)
    levels = build_targets(lab, level_shapes_of((64, 64)), (16, 16), CFG)
    lt = levels[0]
    quarter = lt.stuff_labels[0, :, 0]  # channels present in channel order: 1 (cat 0), 2 (cat 2)
    assert quarter.shape == (2, 16, 16)
    col = quarter[0, :, 5].tolist()
    assert col[6] == 1.0 and col[7] == 0.5 and col[8] == 0.0  # rows 29/30 sampled for i = 7
    assert torch.allclose(quarter.sum(0), torch.ones(16, 16))


def test_vipseg_default_tables():
    cfg = TargetConfig()
    cats = vipseg_categories()
    assert cfg.num_thing == 58 and cfg.num_regions == 67
    things = [c.id for c in cats if c.isthing]
    stuff = [c.id for c in cats if not c.isthing]
    assert [cfg.thing_channel[i] for i in things] == list(range(58))
    assert [cfg.stuff_channel[i] for i in stuff] == list(range(1, 67))
    assert all(cfg.stuff_channel[i] == 0 for i in things)
