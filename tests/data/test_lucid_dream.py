"""Lucid dreaming: the mask follows the object, the hole is filled, seeds reproduce, transforms are correct."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidseg.data.lucid_dream import (
    DreamConfig,
    LucidDreamer,
    change_illumination,
    dream_contact_sheet,
    inpaint_background,
    paste_objects,
    rotate_zoom_matrix,
    thin_plate_map,
)
from vidseg.errors import DataError

H, W = 96, 144


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A smooth blue-green gradient background with a pure red ellipse (the only red thing)."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    image = np.zeros((H, W, 3), dtype=np.uint8)
    image[..., 1] = (60 + 100 * xs / W).astype(np.uint8)
    image[..., 2] = (80 + 120 * ys / H).astype(np.uint8)
    mask = np.zeros((H, W), dtype=np.uint8)
    cv2.ellipse(mask, (50, 45), (18, 26), 20, 0, 360, 1, -1)
    image[mask > 0] = (255, 0, 0)
    return image, mask


def _redness(image: np.ndarray) -> np.ndarray:
    """Red minus the larger of green and blue: about 200+ on the object, negative on the background."""
    rgb = image.astype(np.int32)
    return rgb[..., 0] - np.maximum(rgb[..., 1], rgb[..., 2])


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    # pixels beyond the image border count as outside the region
    return cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0


@pytest.mark.parametrize("index", range(12))
def test_mask_follows_the_object(index: int) -> None:
    image, mask = _scene()
    dreamer = LucidDreamer(image, mask)
    new_image, new_mask = dreamer.sample(seed=3, index=index)
    assert new_image.shape == image.shape and new_mask.shape == mask.shape
    assert set(np.unique(new_mask)) <= {0, 1} and new_mask.any()
    red = _redness(new_image)
    inside, outside = _erode(new_mask, 4), _erode(new_mask == 0, 4)  # blend ring, zoom up to 1.8x
    assert inside.any()
    # every pixel well inside the mask shows the object, none well outside does
    assert red[inside].min() > 120, red[inside].min()
    assert red[outside].max() < 60, red[outside].max()


def test_moves_change_position_and_size() -> None:
    image, mask = _scene()
    dreamer = LucidDreamer(image, mask)
    centres, areas = [], []
    for i in range(10):
        _, m = dreamer.sample(seed=0, index=i)
        ys, xs = np.nonzero(m)
        centres.append((xs.mean(), ys.mean()))
        areas.append(m.sum())
    assert np.ptp(np.array(centres)[:, 0]) > 20 and np.ptp(np.array(centres)[:, 1]) > 10
    assert np.ptp(areas) > 0.1 * mask.sum()


def test_background_hole_is_filled() -> None:
    image, mask = _scene()
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    truth = np.zeros_like(image)
    truth[..., 1] = (60 + 100 * xs / W).astype(np.uint8)
    truth[..., 2] = (80 + 120 * ys / H).astype(np.uint8)
    bg = inpaint_background(image, mask)
    hole = mask > 0
    assert (bg[hole] != 0).any(axis=-1).all()  # no unfilled (black) pixel
    assert _redness(bg).max() < 0  # nothing of the object left
    err = np.abs(bg[hole].astype(np.int32) - truth[hole].astype(np.int32))
    assert err.mean() < 8 and np.percentile(err, 99) < 25, (err.mean(), np.percentile(err, 99))
    grown = cv2.dilate(hole.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))) > 0
    assert np.array_equal(bg[~grown], image[~grown])  # the rest is untouched


def test_dreamed_background_has_no_object_left_behind() -> None:
    image, mask = _scene()
    dreamer = LucidDreamer(image, mask, config=DreamConfig(p_keep_others=1.0))
    for i in range(6):
        img, m = dreamer.sample(seed=1, index=i)
        outside = _erode(m == 0, 4)
        assert _redness(img)[outside].max() < 60


def test_same_seed_same_samples_different_seed_differs() -> None:
    image, mask = _scene()
    a = LucidDreamer(image, mask).samples(4, seed=7)
    b = LucidDreamer(image, mask).samples(4, seed=7)
    c = LucidDreamer(image, mask).samples(4, seed=8)
    for (ia, ma), (ib, mb) in zip(a, b, strict=True):
        assert np.array_equal(ia, ib) and np.array_equal(ma, mb)
    assert any(not np.array_equal(ia, ic) for (ia, _), (ic, _) in zip(a, c, strict=True))
    # a sample does not depend on the order samples are drawn in
    again = LucidDreamer(image, mask).sample(seed=7, index=2)
    assert np.array_equal(again[0], a[2][0]) and np.array_equal(again[1], a[2][1])


def test_multi_object_ids_are_kept() -> None:
    image, mask = _scene()
    mask2 = mask.copy()
    cv2.rectangle(mask2, (100, 20), (125, 60), 2, -1)
    image[mask2 == 2] = (250, 250, 0)
    dreamer = LucidDreamer(image, mask2)
    seen: set[int] = set()
    for i in range(10):
        _, m = dreamer.sample(seed=0, index=i)
        ids = set(np.unique(m).tolist())
        assert ids <= {0, 1, 2} and ids - {0}
        seen |= ids
    assert seen == {0, 1, 2}


def test_thin_plate_map_moves_control_points_and_identity() -> None:
    src = np.array([[10.0, 10.0], [60.0, 15.0], [30.0, 50.0], [70.0, 60.0], [15.0, 70.0]])
    dst = src + np.array([[2.0, -1.0], [-3.0, 2.0], [1.0, 1.0], [0.0, -2.0], [2.0, 2.0]])
    mx, my = thin_plate_map(src, dst, (80, 90))
    for (sx, sy), (dx, dy) in zip(src, dst, strict=True):
        assert abs(mx[int(dy), int(dx)] - sx) < 1e-3 and abs(my[int(dy), int(dx)] - sy) < 1e-3
    ix, iy = thin_plate_map(src, src, (80, 90))
    ys, xs = np.mgrid[0:80, 0:90]
    assert np.abs(ix - xs).max() < 1e-3 and np.abs(iy - ys).max() < 1e-3
    # the coarse evaluation (every 4th pixel, bilinear in between) stays within a tenth of a pixel
    cx, cy = thin_plate_map(src, dst, (80, 90), step=4)
    assert np.abs(cx - mx).max() < 0.1 and np.abs(cy - my).max() < 0.1


def test_rotate_zoom_matrix_keeps_the_frame_inside() -> None:
    h, w = 60, 100
    for angle in (-30, -12, 0, 8, 30):
        m = rotate_zoom_matrix((h, w), angle)
        inv = cv2.invertAffineTransform(m)
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64)
        src = corners @ inv.T
        assert (src[:, 0] >= -1e-6).all() and (src[:, 0] <= w + 1e-6).all()
        assert (src[:, 1] >= -1e-6).all() and (src[:, 1] <= h + 1e-6).all()
    assert np.allclose(rotate_zoom_matrix((h, w), 0), [[1, 0, 0], [0, 1, 0]])


def test_change_illumination_keeps_hue() -> None:
    image, _ = _scene()
    out = change_illumination(image, np.random.default_rng(0))
    hue_in = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL)[..., 0].astype(int)
    hue_out = cv2.cvtColor(out, cv2.COLOR_RGB2HSV_FULL)[..., 0].astype(int)
    d = np.minimum(np.abs(hue_in - hue_out), 256 - np.abs(hue_in - hue_out))
    assert np.percentile(d, 99) <= 4


def test_paste_respects_size_limits() -> None:
    image, mask = _scene()
    bg = np.zeros_like(image)
    cfg = DreamConfig(scale_range=(1.0, 1.0))
    out, ids = paste_objects(image, mask, bg, np.zeros_like(mask), np.random.default_rng(0), cfg)
    ys, xs = np.nonzero(ids)
    lo = round(100 * H / 480)
    assert np.ptp(ys) + 1 >= lo and np.ptp(xs) + 1 >= lo
    assert (out[ids > 0] == (255, 0, 0)).all(axis=-1).mean() > 0.9


def test_bad_input_is_one_line_error() -> None:
    image, mask = _scene()
    with pytest.raises(DataError, match="no object"):
        LucidDreamer(image, np.zeros_like(mask))
    with pytest.raises(DataError, match="differs"):
        LucidDreamer(image, mask[:-1])


def test_contact_sheet_shape() -> None:
    image, mask = _scene()
    pairs = LucidDreamer(image, mask).samples(5, seed=0)
    sheet = dream_contact_sheet(image, mask, pairs, columns=3)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[1] > 3 * W
    assert sheet.shape[0] > 2 * H


def test_thin_object_keeps_its_colour() -> None:
    """Every dreamed object pixel shows the object: a 1-px wide line is not blended into the background."""
    image = np.full((H, W, 3), 90, dtype=np.uint8)
    mask = np.zeros((H, W), dtype=np.uint8)
    cv2.line(mask, (30, 20), (90, 70), 1, 1)
    cv2.line(mask, (30, 70), (90, 20), 1, 1)
    image[mask > 0] = (255, 0, 0)
    plain = DreamConfig(scale_range=(1.0, 1.0), min_side=0.0, p_light_background=0.0, p_deform=0.0,
                        p_rotate=0.0, p_light=0.0)
    dreamer = LucidDreamer(image, mask, config=plain)
    for index in range(4):
        new_image, new_mask = dreamer.sample(seed=0, index=index)
        assert new_mask.sum() >= mask.sum() * 0.9
        assert (new_image[new_mask == 1] == (255, 0, 0)).all()
