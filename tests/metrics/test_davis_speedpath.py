"""The fast DAVIS J/F path (sparse label boundaries, integral-image disk test, box-restricted counts)
against a plain full-frame implementation written from the definition: BSDS ``seg2bmap`` on the whole
mask, ``cv2.dilate`` with the disk X^2 + Y^2 <= r^2 on the whole frame, pixel counts for J."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidseg.metrics.davis import bound_pixels
from vidseg.metrics.davis_fast import (
    JointBoundaries,
    LabelBoundaries,
    _count_within,
    disk_rectangles,
    frame_scores,
    nonzero_box,
)
from vidseg.metrics.davis_folder import _prepare_gt

# ------------------------------------------------------------------ plain full-frame reference


def plain_bmap(seg: np.ndarray) -> np.ndarray:
    """seg2bmap of the whole mask: differs from E, S or SE (zero past the border); last row E only,
    last column S only, bottom-right corner never."""
    seg = seg.astype(bool)
    h, w = seg.shape
    padded = np.zeros((h + 1, w + 1), bool)
    padded[:h, :w] = seg
    e, s, se = padded[:h, 1:], padded[1:, :w], padded[1:, 1:]
    b = (seg != e) | (seg != s) | (seg != se)
    b[h - 1, :] = seg[h - 1, :] != e[h - 1, :]
    b[:, w - 1] = seg[:, w - 1] != s[:, w - 1]
    b[h - 1, w - 1] = False
    return b


def plain_disk(r: int) -> np.ndarray:
    k = np.zeros((2 * r + 1, 2 * r + 1), np.uint8)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            k[dy + r, dx + r] = dx * dx + dy * dy <= r * r
    return k


def plain_f(pred: np.ndarray, gt: np.ndarray, r: int) -> float:
    bf, bg = plain_bmap(pred), plain_bmap(gt)
    n_fg, n_gt = int(bf.sum()), int(bg.sum())
    if n_fg == 0 and n_gt > 0:
        p, rec = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        p, rec = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        p, rec = 1.0, 1.0
    else:
        kernel = plain_disk(r)
        p = int((bf & cv2.dilate(bg.astype(np.uint8), kernel).astype(bool)).sum()) / n_fg
        rec = int((bg & cv2.dilate(bf.astype(np.uint8), kernel).astype(bool)).sum()) / n_gt
    return 0.0 if p + rec == 0 else 2 * p * rec / (p + rec)


def plain_j(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> float:
    keep = np.ones(gt.shape, bool) if void is None else ~void
    inter = int((pred & gt & keep).sum())
    union = int(((pred | gt) & keep).sum())
    return 1.0 if union == 0 else inter / union


# ------------------------------------------------------------------ random label maps


def random_labels(rng: np.random.Generator, h: int, w: int, n: int, kind: str) -> np.ndarray:
    """Label map 0..n: blobs (some touching the border), specks, stripes on the last row/column, noise."""
    lab = np.zeros((h, w), np.uint8)
    if kind == "noise":
        return rng.integers(0, n + 1, (h, w)).astype(np.uint8)
    for i in range(1, n + 1):
        shape = rng.choice(["ellipse", "rect", "speck", "edge", "absent", "full"],
                           p=[0.35, 0.25, 0.15, 0.1, 0.1, 0.05])
        if shape == "ellipse":
            c = (int(rng.integers(-3, w + 3)), int(rng.integers(-3, h + 3)))
            ax = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.ellipse(lab, c, ax, float(rng.integers(0, 180)), 0, 360, i, -1)
        elif shape == "rect":
            y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            lab[y0: y0 + int(rng.integers(1, h + 1)), x0: x0 + int(rng.integers(1, w + 1))] = i
        elif shape == "speck":
            lab[int(rng.integers(0, h)), int(rng.integers(0, w))] = i
        elif shape == "edge":  # last row, last column, corners
            sel = rng.integers(0, 4)
            if sel == 0:
                lab[h - 1, int(rng.integers(0, w)):] = i
            elif sel == 1:
                lab[int(rng.integers(0, h)):, w - 1] = i
            elif sel == 2:
                lab[h - 1, w - 1] = i
            else:
                lab[0, 0] = i
        elif shape == "full":
            lab[:] = i
    if kind == "holes":
        lab[rng.random((h, w)) < 0.05] = 0
    return lab


def perturbed(rng: np.random.Generator, lab: np.ndarray, n: int) -> np.ndarray:
    """A prediction near ``lab``: shifted, with some pixels relabelled and sometimes an object dropped."""
    dy, dx = (int(v) for v in rng.integers(-4, 5, 2))
    pred = np.roll(np.roll(lab, dy, 0), dx, 1)
    flip = rng.random(lab.shape) < rng.choice([0.0, 0.01, 0.2])
    pred[flip] = rng.integers(0, n + 1, int(flip.sum()))
    if n and rng.random() < 0.2:
        pred[pred == rng.integers(1, n + 1)] = 0
    return pred


@st.composite
def frame_case(draw, max_side=48):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    n = draw(st.integers(0, 16))  # above 14 objects the joint code is int32
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["blobs", "holes", "noise"]))
    gt = random_labels(rng, h, w, n, kind)
    pred = perturbed(rng, gt, n) if draw(st.booleans()) else random_labels(rng, h, w, n, kind)
    bound_th = draw(st.sampled_from([0.008, 0.03, 0.1, 0, 1, 2, 3, 5, 8]))
    return gt, pred, n, bound_th


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("r", range(0, 41))
def test_disk_rectangles_cover_the_disk_exactly(r):
    union = np.zeros((2 * r + 1, 2 * r + 1), np.uint8)
    for hw, hh in disk_rectangles(r):
        union[r - hh: r + hh + 1, r - hw: r + hw + 1] = 1
    np.testing.assert_array_equal(union, plain_disk(r))


@settings(max_examples=200, deadline=None)
@given(frame_case(), st.sampled_from([np.uint8, np.uint8, np.uint16]))
def test_semi_supervised_frame_scores_equal_full_frame_dilation(case, dtype):
    """uint8 maps take the joint scan, others the per-map scan and the histogram."""
    gt, pred, n, bound_th = case
    j, f = frame_scores(gt.astype(dtype), pred.astype(dtype), n, n, pairs="diagonal", bound_th=bound_th)
    r = bound_pixels(gt.shape, bound_th)
    for i in range(1, n + 1):
        assert j[i - 1] == plain_j(pred == i, gt == i)
        assert f[i - 1] == plain_f(pred == i, gt == i, r)  # same integer counts: bit-identical


@settings(max_examples=60, deadline=None)
@given(frame_case(max_side=32), st.sampled_from([None, 0.0, 0.05, 0.3]))
def test_all_pairs_frame_scores_equal_full_frame_dilation(case, void_rate):
    """All (proposal, object) pairs, with void (per-map scan) and without (joint scan)."""
    gt, pred, n, bound_th = case
    rng = np.random.default_rng(gt.size + n)
    void = rng.random(gt.shape) < (void_rate or 0.0)
    n_res = int(pred.max())
    j, f = frame_scores(gt, pred, n, n_res, void=None if void_rate is None else void, pairs="all",
                        bound_th=bound_th)
    r = bound_pixels(gt.shape, bound_th)
    for p in range(1, n_res + 1):
        for g in range(1, n + 1):
            assert j[p - 1, g - 1] == plain_j(pred == p, gt == g, void)
            assert f[p - 1, g - 1] == plain_f((pred == p) & ~void, (gt == g) & ~void, r)


@settings(max_examples=150, deadline=None)
@given(frame_case(), st.sampled_from(["uint8", "uint8_255", "int32", "uint16"]))
def test_label_boundaries_equal_seg2bmap_of_each_object(case, dtype):
    lab, _, n, _ = case
    lab = lab.astype(dtype.split("_")[0])
    if dtype == "uint8_255":  # a 255 label forces the wide (int32) scan
        lab[0, 0] = 255
    lb = LabelBoundaries(lab)
    for i in range(1, n + 1):
        ys, xs = lb.points(i)
        ry, rx = np.nonzero(plain_bmap(lab == i))
        got = sorted(zip(ys.tolist(), xs.tolist(), strict=True))
        assert got == sorted(zip(ry.tolist(), rx.tolist(), strict=True))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 12), st.integers(1, 40), st.integers(1, 40))
def test_count_within_equals_dilation_count(seed, r, h, w):
    rng = np.random.default_rng(seed)
    a = rng.random((h, w)) < rng.choice([0.0, 0.002, 0.02, 0.3])
    b = rng.random((h, w)) < rng.choice([0.002, 0.02, 0.3])
    a[rng.integers(0, h), rng.integers(0, w)] = True
    expect = int((a & cv2.dilate(b.astype(np.uint8), plain_disk(r)).astype(bool)).sum())
    assert _count_within(np.nonzero(a), np.nonzero(b), r) == expect


def test_count_within_tolerance_is_inclusive_at_exactly_r():
    # (0, 0) and (3, 4): distance exactly 5
    src = (np.array([0]), np.array([0]))
    ref = (np.array([3]), np.array([4]))
    assert _count_within(src, ref, 5) == 1
    assert _count_within(src, ref, 4) == 0
    # (0, 0) and (5, 5): squared distance 50 > 49 = 7^2, <= 64 = 8^2
    ref = (np.array([5]), np.array([5]))
    assert _count_within(src, ref, 7) == 0
    assert _count_within(src, ref, 8) == 1


@settings(max_examples=200, deadline=None)
@given(frame_case())
def test_joint_boundaries_table_and_points(case):
    """The joint table from run lengths equals pixel counting; both maps' boundaries equal seg2bmap."""
    gt, pred, n, _ = case
    k = max(n, int(gt.max()), int(pred.max())) + 1
    jb = JointBoundaries(gt, pred, k)
    expect = np.zeros((k, k), np.int64)
    np.add.at(expect, (gt.ravel(), pred.ravel()), 1)
    np.testing.assert_array_equal(jb.table, expect)
    for side, lab in ((0, gt), (1, pred)):
        for i in range(1, k):
            ys, xs = jb.points(side, i)
            ry, rx = np.nonzero(plain_bmap(lab == i))
            assert sorted(zip(ys.tolist(), xs.tolist(), strict=True)) == sorted(zip(ry.tolist(), rx.tolist(),
                                                                                    strict=True))


@pytest.mark.parametrize("k", [15, 16, 40])
def test_joint_boundaries_wide_codes(k):
    """k * k > 255 switches the joint code from uint8 to int32; ids up to k - 1."""
    rng = np.random.default_rng(k)
    gt = random_labels(rng, 30, 50, k - 1, "blobs")
    pred = perturbed(rng, gt, k - 1)
    jb = JointBoundaries(gt, pred, k)
    expect = np.zeros((k, k), np.int64)
    np.add.at(expect, (gt.ravel(), pred.ravel()), 1)
    np.testing.assert_array_equal(jb.table, expect)
    j, f = frame_scores(gt, pred, k - 1, k - 1, pairs="diagonal", bound_th=3)
    for i in range(1, k):
        assert j[i - 1] == plain_j(pred == i, gt == i)
        assert f[i - 1] == plain_f(pred == i, gt == i, 3)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([np.uint8, np.int32, np.int64]), st.integers(1, 20),
       st.integers(1, 20))
def test_nonzero_box(seed, dtype, h, w):
    rng = np.random.default_rng(seed)
    lab = (rng.integers(0, 3, (h, w)) * (rng.random((h, w)) < rng.choice([0.0, 0.05, 0.5]))).astype(dtype)
    ys, xs = np.nonzero(lab)
    expect = None if len(ys) == 0 else (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
    assert nonzero_box(lab) == expect


@pytest.mark.parametrize("n_gt", [0, 1, 3, 254])
def test_prepare_gt_threshold_path_equals_masking(n_gt):
    rng = np.random.default_rng(n_gt)
    gt = rng.integers(0, 256, (37, 41)).astype(np.uint8)
    gt[0, :5] = 255
    g, void = _prepare_gt(gt, n_gt, "semi-supervised", False)
    expect = gt.copy()
    expect[(expect > n_gt) | (expect == 255)] = 0
    np.testing.assert_array_equal(g, expect)
    assert g.dtype == np.uint8 and void is None
    g16, _ = _prepare_gt(gt.astype(np.uint16), n_gt, "semi-supervised", False)  # the generic path
    np.testing.assert_array_equal(g16, expect)


def _full_size_case(seed: int):
    rng = np.random.default_rng(seed)
    gt = random_labels(rng, 480, 854, int(rng.integers(1, 6)), "blobs")
    return gt, perturbed(rng, gt, int(gt.max()))


@pytest.mark.parametrize("seed", range(4))
def test_full_size_frames_equal_full_frame_dilation(seed):
    """480x854, the DAVIS size: tolerance ceil(0.008 * 978.8) = 8 pixels."""
    gt, pred = _full_size_case(seed)
    n = int(gt.max())
    assert bound_pixels(gt.shape) == 8 == math.ceil(0.008 * math.hypot(480, 854))
    j, f = frame_scores(gt, pred, n, n, pairs="diagonal")
    for i in range(1, n + 1):
        assert j[i - 1] == plain_j(pred == i, gt == i)
        assert f[i - 1] == plain_f(pred == i, gt == i, 8)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4, 64))
def test_full_size_frames_equal_full_frame_dilation_many(seed):
    test_full_size_frames_equal_full_frame_dilation(seed)


# ------------------------------------------------------------------ PNG reader


def _png_variants(tmp_path, rng):
    """(name, path) of label PNGs in the forms met in practice, plus ones the fast decode must leave alone."""
    from PIL import Image

    lab = rng.integers(0, 256, (23, 37)).astype(np.uint8)
    small = (lab % 6).astype(np.uint8)
    pal = [int(v) for v in rng.integers(0, 256, 768)]
    out = []

    def save(name, img, **kw):
        path = tmp_path / f"{name}.png"
        img.save(path, **kw)
        out.append((name, path))

    for name, arr in (("p_full", lab), ("p_small", small), ("p_one_pixel", lab[:1, :1]),
                      ("p_davis_size", rng.integers(0, 4, (480, 854)).astype(np.uint8))):
        img = Image.fromarray(arr, "P")
        img.putpalette(pal)
        save(name, img)
    img = Image.fromarray(small, "P")
    img.putpalette(pal[:48])
    save("p_4bit", img, bits=4)
    save("p_no_palette_1bit", Image.fromarray(small, "P"))  # Pillow writes it 1-bit
    img = Image.fromarray(small, "P")
    img.putpalette(pal)
    img.info["transparency"] = 0
    save("p_transparency", img)
    save("l", Image.fromarray(lab, "L"))
    save("i16", Image.fromarray(lab.astype(np.uint16) * 257))
    save("mode1", Image.fromarray(lab > 127))
    jpeg_named_png = tmp_path / "jpeg.png"
    Image.fromarray(lab, "L").save(jpeg_named_png, format="JPEG")
    out.append(("jpeg_named_png", jpeg_named_png))
    return out


def test_read_index_png_equals_plain_reader(tmp_path):
    from vidseg.metrics.davis_folder import _decode_into_array, _read_index_png
    from vidseg.metrics.folder import read_label_png

    fast_modes = 0
    for name, path in _png_variants(tmp_path, np.random.default_rng(0)):
        if name == "jpeg_named_png":  # lossy labels: both readers refuse it by name (issue 11)
            from vidseg.errors import DataError

            for reader in (_read_index_png, read_label_png):
                with pytest.raises(DataError, match="holds JPEG data, not PNG"):
                    reader(path)
            assert _decode_into_array(path) is None
            continue
        got, expect = _read_index_png(path), read_label_png(path)
        assert got.dtype == expect.dtype and got.shape == expect.shape, name
        np.testing.assert_array_equal(got, expect, err_msg=name)
        fast = _decode_into_array(path)
        if name.startswith(("p_", "l")):
            assert fast is not None, f"{name}: the direct decode should apply"
            fast_modes += 1
        else:
            assert fast is None, f"{name}: must be left to the plain reader"
    assert fast_modes == 8


def test_read_index_png_errors_are_the_plain_readers(tmp_path):
    from PIL import Image

    from vidseg.errors import DataError
    from vidseg.metrics.davis_folder import _read_index_png

    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(rgb)
    good = tmp_path / "good.png"
    img = Image.fromarray(np.random.default_rng(1).integers(0, 4, (64, 64)).astype(np.uint8), "P")
    img.putpalette([0] * 768)
    img.save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-40])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png at all")
    for path, words in ((rgb, "mode is RGB"), (truncated, "truncated"), (garbage, "unreadable"),
                        (tmp_path / "missing.png", "not found")):
        with pytest.raises(DataError, match=words):
            _read_index_png(path)
