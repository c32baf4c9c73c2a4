"""The official test-time preprocessing, restated here from its semantics and compared bit for bit.

Restatements (written from the official code's behaviour, not from vidseg):

* Resize and normalisation: ``tests/official_restatement.py`` (mmcv ``imrescale`` + ``AlignedResize._align``,
  mmcv ``imnormalize``, TCB's ``x / 255`` + torchvision ``Normalize``).
* Decoding: OpenCV ``IMREAD_COLOR`` (applies the EXIF orientation), BGR -> RGB.
* TCB ``TestDataset_longclip``: ``imglist[t + d]`` unless ``t + 9 >= len``, else ``imglist[t - d]`` (negative
  indices wrap like Python lists; below -len they raise IndexError).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from official_restatement import aligned_resize as official_aligned_resize
from official_restatement import imnormalize, tcb_normalize
from vidseg.data.sampling import TCBSampler
from vidseg.data.transforms import (
    NORMALIZATIONS,
    AlignedResize,
    ClipData,
    aligned_resize,
    aligned_size,
    normalize_frames,
)
from vidseg.data.video import FrameFolder
from vidseg.fileio import read_image
from vidseg.inference.tta import TTA, TTA_SCALES, resize_view, variant_size, view_scale

SIZES_WH = [(853, 480), (854, 480), (633, 427), (1024, 436)]
SCALES = [((853, 480), 32), ((2048, 512), 32)]  # CFFM, SegFormer (official test configs)


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (resampling differences show up on smooth and sharp content alike)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(h // 8, 2), max(w // 8, 2), 3)).astype(np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    img[h // 3: h // 3 + 5] = 255  # a sharp stripe
    return img


@pytest.mark.parametrize("size_wh", SIZES_WH)
@pytest.mark.parametrize("scale,divisor", SCALES)
def test_aligned_resize_is_the_official_two_step_resize(size_wh, scale, divisor):
    w, h = size_wh
    img = _photo(h, w)
    ours = aligned_resize(img, scale, divisor)
    ref = official_aligned_resize(img, scale, divisor)
    assert ours.shape == ref.shape == (*aligned_size((h, w), scale, divisor), 3)
    assert np.array_equal(ours, ref)
    # and through the TTA view functions (ratio 1, as MultiScaleFlipAug with one scale)
    assert np.array_equal(resize_view(img, 1.0, scale, divisor), ref)
    assert variant_size((h, w), 1.0, scale, divisor) == ref.shape[:2]


def test_two_steps_differ_from_one_resize():
    """The reason for the two steps: one resize straight to the aligned size gives other pixels (854x480)."""
    img = _photo(480, 854)
    ref = official_aligned_resize(img, (853, 480), 32)
    one_step = cv2.resize(img, (ref.shape[1], ref.shape[0]), interpolation=cv2.INTER_LINEAR)
    assert ref.shape == (480, 864, 3)
    assert np.abs(one_step.astype(int) - ref).max() > 10


def test_known_official_sizes():
    # (W, H) -> aligned (H, W) for CFFM (853, 480)/32 and SegFormer (2048, 512)/32, computed by hand
    assert aligned_size((480, 853), (853, 480), 32) == (480, 864)
    assert aligned_size((480, 854), (853, 480), 32) == (480, 864)  # via 479x853
    assert aligned_size((427, 633), (853, 480), 32) == (480, 736)  # 633*480/427 = 711.6 -> 712
    assert aligned_size((436, 1024), (2048, 512), 32) == (512, 1216)  # 1024*512/436 = 1202.49 -> 1202


def test_view_scales_follow_multiscaleflipaug():
    # mode 2 (img_scale + ratios): int(853 * 0.75), int(480 * 0.75); mode 1 (no img_scale): the frame's (W, H)
    assert view_scale((480, 854), 0.75, (853, 480)) == (639, 360)
    assert view_scale((427, 633), 1.75, None) == (1107, 747)
    img = _photo(427, 633, 1)
    assert np.array_equal(resize_view(img, 0.75, (853, 480), 32), official_aligned_resize(img, (639, 360), 32))
    assert np.array_equal(resize_view(img, 1.0, None, 1), img)


def test_tta_scales_per_dataset():
    assert TTA.for_dataset("vspw").scales == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
    assert TTA.for_dataset("ade20k").scales == (0.75, 0.875, 1.0, 1.125, 1.25)
    assert TTA.for_dataset("vspw").flip and TTA() == TTA.for_dataset("vspw")
    assert set(TTA_SCALES) == {"vspw", "ade20k", "cityscapes"}
    with pytest.raises(ValueError, match="no official TTA scales"):
        TTA.for_dataset("davis")


def test_aligned_resize_transform_labels_nearest():
    img = _photo(427, 633)
    lab = (np.arange(427 * 633).reshape(427, 633) % 7).astype(np.uint8)
    out = AlignedResize((853, 480), 32)(ClipData([img], [lab]), np.random.default_rng(0))
    factor = min(853 / 633, 480 / 427)
    step1 = cv2.resize(lab, (int(633 * factor + 0.5), int(427 * factor + 0.5)), interpolation=cv2.INTER_NEAREST)
    ref = cv2.resize(step1, (736, 480), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(out.labels[0], ref)
    assert np.array_equal(out.frames[0], official_aligned_resize(img, (853, 480), 32))


def test_normalisation_matches_mmcv_and_torchvision_bitwise():
    img = np.stack(np.meshgrid(np.arange(256), np.arange(256)[::-1]), -1)
    img = np.concatenate([img, (img[..., :1] * 7) % 256], -1).astype(np.uint8)  # every value in every channel
    ours = normalize_frames(img).permute(1, 2, 0).numpy()
    assert np.array_equal(ours, imnormalize(np.ascontiguousarray(img[:, :, ::-1])))  # mmcv decodes BGR
    tv = NORMALIZATIONS["torchvision"]
    ref = tcb_normalize(img)
    theirs = normalize_frames(img, tv.mean, tv.std, tv.input_scale)
    assert torch.equal(theirs, ref)
    assert not torch.equal(theirs, normalize_frames(img))  # the two conventions differ in the last bits


def _exif_jpeg(rgb: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_frames_are_decoded_upright_like_opencv(tmp_path: Path, orientation: int):
    rgb = _photo(48, 80, orientation)
    path = tmp_path / "00000001.jpg"
    path.write_bytes(_exif_jpeg(rgb, orientation))
    ref = cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1]  # the official decode
    ours = read_image(path, "RGB")
    assert ours.shape == ref.shape and np.array_equal(ours, ref)
    assert ref.shape[:2] == ((80, 48) if orientation >= 5 else (48, 80))


def test_frame_folder_applies_exif_orientation(tmp_path: Path):
    rgb = _photo(48, 80, 3)
    for i in range(3):
        (tmp_path / f"{i:08d}.jpg").write_bytes(_exif_jpeg(rgb, 6))  # "rotate 90 CW to view"
    folder = FrameFolder(tmp_path)
    ref = cv2.imread(str(tmp_path / "00000000.jpg"), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert folder.size == (80, 48)
    frames = list(folder)
    assert all(np.array_equal(f, ref) for f in frames)


def _official_tcb_supports(index: int, num: int, dilations=(3, 6, 9)) -> list[int]:
    imglist = list(range(num))
    out = []
    for dil in dilations:
        idx = index - dil if index + dilations[-1] >= num else index + dil
        out.append(imglist[idx])
    return out


@pytest.mark.parametrize("num", [9, 10, 12, 17, 18, 30])
def test_tcb_wrap_rule_is_the_official_loader(num):
    wrap, clamp = TCBSampler(short_video="wrap"), TCBSampler()
    for t in range(num):
        assert list(wrap.test_clip(t, num)[:-1]) == _official_tcb_supports(t, num)
        assert wrap.test_clip(t, num)[-1] == t
        assert all(0 <= i < num for i in clamp.test_clip(t, num))
    differ = [t for t in range(num) if wrap.test_clip(t, num) != clamp.test_clip(t, num)]
    assert (differ != []) == (num <= 17)
    assert TCBSampler(short_video="wrap").test_clip(0, 9) == (6, 3, 0, 0)


def test_tcb_wrap_rule_fails_where_the_official_loader_fails():
    with pytest.raises(IndexError):
        _official_tcb_supports(0, 8)
    with pytest.raises(IndexError, match="at least 9 frames"):
        TCBSampler(short_video="wrap").test_clip(0, 8)
    assert TCBSampler().test_clip(0, 8) == (0, 0, 0, 0)  # clamp: t + 9 >= 8, so past supports clamped at 0
    with pytest.raises(ValueError, match="short_video"):
        TCBSampler(short_video="loop")
