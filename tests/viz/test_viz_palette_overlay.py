"""Palettes, instance colours, overlays and contours."""

from __future__ import annotations

import numpy as np
import pytest

from vidseg.categories import davis_palette, semantic_palette
from vidseg.viz.overlay import blend, boundaries, draw_contours, overlay_instances, overlay_semantic
from vidseg.viz.palette import (
    colorize,
    colorize_instances,
    colorize_panoptic,
    davis_colors,
    instance_color,
    semantic_colors,
)


def test_semantic_and_davis_palettes_come_from_the_package_data():
    lut = semantic_colors()
    assert lut.shape == (256, 3)
    assert np.array_equal(lut[:124], semantic_palette())
    assert tuple(lut[60]) == (11, 200, 200)  # person
    assert tuple(lut[255]) == (0, 0, 0)
    assert np.array_equal(davis_colors(), davis_palette())
    assert tuple(davis_colors()[1]) == (128, 0, 0)


def test_colorize_uses_the_lookup_table_and_checks_range():
    labels = np.array([[0, 60], [255, 123]], dtype=np.uint8)
    rgb = colorize(labels)
    assert tuple(rgb[0, 1]) == (11, 200, 200) and tuple(rgb[1, 0]) == (0, 0, 0)
    assert np.array_equal(colorize(labels, davis_palette())[0, 1], davis_palette()[60])
    with pytest.raises(ValueError):
        colorize(np.array([[300]]))


def test_instance_colours_are_deterministic_distinct_and_stable_across_frames():
    assert instance_color(0) == (0, 0, 0)
    colours = [instance_color(i) for i in range(1, 201)]
    assert len(set(colours)) >= 195
    assert all(max(c) >= 150 for c in colours)  # bright enough to see
    a = np.array([[1, 2], [3, 0]])
    b = np.array([[0, 3], [7, 2]])  # the same ids in another frame, other positions, other neighbours
    ca, cb = colorize_instances(a), colorize_instances(b)
    assert tuple(ca[1, 0]) == tuple(cb[0, 1]) == instance_color(3)
    assert tuple(ca[0, 1]) == tuple(cb[1, 1]) == instance_color(2)
    assert tuple(ca[1, 1]) == (0, 0, 0)


def test_colorize_panoptic_stuff_in_class_colour_things_per_id():
    ids = np.array([[29 * 1000, 61 * 1000 + 1], [61 * 1000 + 2, 0]])
    rgb = colorize_panoptic(ids)
    assert tuple(rgb[0, 0]) == tuple(semantic_palette()[28])  # stuff: category 28 (sky)
    assert tuple(rgb[0, 1]) == instance_color(61001) and tuple(rgb[1, 0]) == instance_color(61002)
    assert tuple(rgb[1, 1]) == (0, 0, 0)


def test_blend_pixel_maths():
    image = np.full((2, 3, 3), 100, dtype=np.uint8)
    colors = np.zeros_like(image)
    colors[..., 0] = 200
    out = blend(image, colors, alpha=0.25)
    assert tuple(out[0, 0]) == (125, 75, 75)  # 0.75*100 + 0.25*200, 0.75*100 + 0
    where = np.array([[True, False, True], [False, False, False]])
    out = blend(image, colors, alpha=0.5, where=where)
    assert tuple(out[0, 0]) == (150, 50, 50) and tuple(out[0, 1]) == (100, 100, 100)
    assert np.array_equal(blend(image, colors, 0.0), image)
    with pytest.raises(ValueError):
        blend(image, colors, 1.5)


def test_boundaries_and_contours():
    labels = np.zeros((4, 5), dtype=np.uint8)
    labels[:, 3:] = 1
    edge = boundaries(labels)
    assert edge[:, 2].all() and edge.sum() == 4
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    out = draw_contours(image, labels, color=(255, 0, 0))
    assert tuple(out[1, 2]) == (255, 0, 0) and tuple(out[1, 0]) == (0, 0, 0)
    thick = draw_contours(image, labels, color=(255, 0, 0), thickness=3)
    assert (thick[..., 0] > 0).sum() > 4
    assert image.sum() == 0  # inputs untouched


def test_overlays_leave_ignored_pixels_alone():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    labels = np.full((6, 6), 255, dtype=np.uint8)
    labels[:3, :3] = 60
    out = overlay_semantic(image, labels, alpha=0.5, contours=False)
    assert np.array_equal(out[4:, 4:], image[4:, 4:])
    want = np.rint(0.5 * image[0, 0].astype(float) + 0.5 * np.array([11, 200, 200])).astype(np.uint8)
    assert np.array_equal(out[0, 0], want)
    ids = np.zeros((6, 6), dtype=np.int32)
    ids[2:4, 2:4] = 17
    out = overlay_instances(image, ids, alpha=1.0, contours=False)
    assert tuple(out[2, 2]) == instance_color(17) and np.array_equal(out[0, 0], image[0, 0])
