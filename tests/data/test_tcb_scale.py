"""TCB's training scale (``RandomScale``) equals the official VSPW loader's: PIL resize to truncated sizes.

The official rule (CVPR2021_VSPW_Implement ``dataset2.py``, ``BaseDataset_longclip.__getitem__``, run with
``--multi_scale True`` by ``scripts/run_temporal_*.sh``): ``new_w = int(w * scale)``, ``new_h = int(h * scale)``,
``img.resize((new_w, new_h), Image.BILINEAR)``, ``segm.resize(..., Image.NEAREST)``, nothing when scale is 1.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from vidseg.data.transforms import ClipData, RandomScale

SCALES = (0.8, 1.0, 1.5, 2.0)


def _clip(h: int, w: int, frames: int = 2) -> ClipData:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(frames)]
    labels = [rng.integers(0, 124, (h, w), dtype=np.uint8) for _ in range(frames)]
    labels[0][:5] = 255
    return ClipData(images, labels)


def _official(image: np.ndarray, label: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    img, segm = Image.fromarray(image), Image.fromarray(label)
    w, h = img.size
    if scale != 1.0:
        new_w, new_h = int(w * scale), int(h * scale)
        img = img.resize((new_w, new_h), Image.BILINEAR)
        segm = segm.resize((new_w, new_h), Image.NEAREST)
    return np.array(img), np.array(segm)


def test_random_scale_equals_the_official_pil_resize():
    clip = _clip(61, 107)  # sizes whose scaled edges are fractional: truncation matters
    seen = set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        scale = SCALES[int(np.random.default_rng(seed).integers(0, len(SCALES)))]  # the draw RandomScale makes
        out = RandomScale(SCALES)(clip, rng)
        seen.add(scale)
        for t in range(2):
            image, label = _official(clip.frames[t], clip.labels[t], scale)
            np.testing.assert_array_equal(out.frames[t], image)
            np.testing.assert_array_equal(out.labels[t], label)
    assert seen == set(SCALES)


def test_sizes_are_truncated_not_rounded():
    clip = _clip(480, 853, frames=1)
    sizes = {RandomScale((s,))(clip, np.random.default_rng(0)).size for s in SCALES}
    # 853 * 1.5 = 1279.5 -> 1279 (rounding gave 1280); 853 * 0.8 = 682.4 -> 682
    assert sizes == {(384, 682), (480, 853), (720, 1279), (960, 1706)}


def test_differs_from_opencv_bilinear_when_shrinking():
    """The check above can fail: OpenCV's bilinear (the previous implementation) gives other pixels at 0.8."""
    clip = _clip(61, 107, frames=1)
    ours = RandomScale((0.8,))(clip, np.random.default_rng(0)).frames[0]
    h, w = ours.shape[:2]
    opencv = cv2.resize(clip.frames[0], (w, h), interpolation=cv2.INTER_LINEAR)
    assert np.abs(ours.astype(int) - opencv.astype(int)).max() > 10
