"""In-memory behaviour of the synthetic generator: determinism, exact ground truth, motion, occlusion."""

from __future__ import annotations

import numpy as np
import pytest

from vidseg.categories import vipseg_categories
from vidseg.data.synth import SynthConfig, SyntheticVideo, iter_frames, plan_video
from vidseg.data.synth.appearance import DEFAULT_APPEARANCE, category_tile, pack_rgb
from vidseg.data.synth.scene import amodal_mask, depth_order
from vidseg.errors import ConfigError

SIZE = (48, 80)
NAMES = {c.id: c.name for c in vipseg_categories()}


def _frames_equal(a, b) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("image", "semantic", "instance", "void"))


def test_same_seed_same_frames_different_seed_differs():
    a = list(SyntheticVideo(SIZE, 6, seed=5, index=1))
    b = list(iter_frames(SIZE, 6, seed=5, index=1))
    c = list(SyntheticVideo(SIZE, 6, seed=6, index=1))
    d = list(SyntheticVideo(SIZE, 6, seed=5, index=2))
    assert all(_frames_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(_frames_equal(x, y) for x, y in zip(a, c, strict=True))
    assert not all(_frames_equal(x, y) for x, y in zip(a, d, strict=True))


def test_random_access_equals_sequential():
    video = SyntheticVideo(SIZE, 8, seed=2, config=SynthConfig(degrade_prob=0.5))
    frames = list(video)
    for t in (7, 0, 3, -1):
        assert _frames_equal(video[t], frames[t])
    with pytest.raises(IndexError):
        video[8]


def test_output_types_and_label_ranges():
    frame = SyntheticVideo(SIZE, 3, seed=0)[1]
    assert frame.image.shape == (*SIZE, 3) and frame.image.dtype == np.uint8
    assert frame.semantic.shape == SIZE and frame.semantic.dtype == np.uint8
    assert frame.instance.dtype == np.int32 and frame.void.dtype == bool
    labels = set(np.unique(frame.semantic).tolist())
    assert labels <= set(range(124)) | {255}
    # void pixels are ignored and carry no instance
    assert np.all(frame.semantic[frame.void] == 255) and np.all(frame.instance[frame.void] == 0)


def _clean_frames(n_videos=6, frames=4, config=None):
    config = config or SynthConfig(degrade_prob=0.0, void_prob=0.5, others_prob=0.5)
    for i in range(n_videos):
        video = SyntheticVideo((64, 96), frames, seed=11, index=i, config=config)
        for t in range(frames):
            yield video, t, video[t]


def test_every_labelled_pixel_shows_its_class_texture():
    """Ground truth equals drawn content: a pixel of class c has a colour of c's texture tile (clean frames)."""
    checked = 0
    for video, _, frame in _clean_frames():
        packed = pack_rgb(frame.image)
        stuff = (frame.instance == 0) & (frame.semantic != 255)
        for region, cat in enumerate(video.plan.region_categories):
            if cat == 255:
                continue
            tile = video.plan.region_tiles[region]
            pix = packed[stuff & (frame.semantic == cat)]
            assert np.isin(pix, tile).all(), NAMES[cat]
            checked += pix.size
        for obj in video.plan.objects:
            pix = packed[frame.instance == obj.track_id]
            assert np.isin(pix, obj.tile).all()
            assert np.all(frame.semantic[frame.instance == obj.track_id] == obj.category)
            checked += pix.size
    assert checked > 10_000


def test_class_colour_statistics_follow_the_appearance_table():
    """Mean colour of every default class region is near its designed mean (per-video tint is at most 8%)."""
    sums: dict[int, list] = {}
    for _, _, frame in _clean_frames(n_videos=8, frames=2):
        for cat in np.unique(frame.semantic):
            if cat == 255:
                continue
            sel = frame.semantic == cat
            sums.setdefault(int(cat), []).append(frame.image[sel].astype(np.float64).mean(axis=0))
    assert len(sums) >= 6
    for cat, means in sums.items():
        want = np.array(DEFAULT_APPEARANCE[NAMES[cat]].mean, dtype=np.float64)
        got = np.mean(means, axis=0)
        assert np.all(np.abs(got - want) <= 0.1 * want + 12), (NAMES[cat], got, want)


def test_tiles_do_not_depend_on_the_dataset_seed():
    cat = next(c.id for c in vipseg_categories() if c.name == "grass")
    t1 = category_tile(cat, "grass")
    category_tile.cache_clear()
    assert np.array_equal(t1, category_tile(cat, "grass"))


def test_occlusion_follows_depth_order():
    """Where two objects' shapes overlap, the pixel belongs to the nearer one (or to the void bar)."""
    overlaps = 0
    config = SynthConfig(degrade_prob=0.0, objects=(4, 6), things=("person", "car"))
    for i in range(6):
        video = SyntheticVideo((64, 96), 6, seed=3, index=i, config=config)
        for t in range(0, 6, 2):
            frame = video[t]
            order = depth_order(video.plan, t)
            masks = [amodal_mask(video.plan, o, t) for o in order]
            for k, obj in enumerate(order):
                nearer = np.zeros(frame.instance.shape, dtype=bool)
                for m in masks[k + 1:]:
                    nearer |= m
                mine = masks[k] & ~nearer & ~frame.void
                assert np.all(frame.instance[mine] == obj.track_id)
                assert not np.any((frame.instance == obj.track_id) & ~masks[k])
                hidden = masks[k] & nearer
                overlaps += int(hidden.sum())
                assert not np.any(frame.instance[hidden] == obj.track_id)
    assert overlaps > 0  # the scenes do contain occlusions


def test_objects_move_smoothly_and_actually_move():
    config = SynthConfig(degrade_prob=0.0)
    moved = False
    for i in range(4):
        video = SyntheticVideo((96, 160), 12, seed=1, index=i, config=config)
        plan = video.plan
        for obj in plan.objects:
            assert obj.x.max_step <= config.max_speed + 1e-9
            assert obj.log_scale.max_step <= config.max_scale_step + 1e-9
        assert plan.cam_x.max_step <= config.max_pan + 1e-9
        assert plan.log_zoom.max_step <= config.max_zoom_step + 1e-9
        prev = None
        for frame in video:
            cents = {}
            for s in frame.objects:
                sel = frame.instance == s.track_id
                # fully visible and not touching the border: centroid of the drawn mask
                full = amodal_mask(plan, plan.objects[s.track_id - 1], frame.index)
                if sel.sum() >= 30 and sel.sum() == full.sum() and not (sel[0].any() or sel[-1].any()
                                                                          or sel[:, 0].any() or sel[:, -1].any()):
                    ys, xs = np.nonzero(sel)
                    cents[s.track_id] = np.array([xs.mean(), ys.mean()])
            if prev is not None:
                for k in cents.keys() & prev.keys():
                    step = np.abs(cents[k] - prev[k]).max()
                    # world step <= speed + pan, plus zoom/scale changes: a few percent of the height
                    assert step <= 0.06 * 96 + 1, step
                    moved |= step > 0.3
            prev = cents
    assert moved


def test_objects_enter_and_leave_the_view():
    events = 0
    for i in range(8):
        video = SyntheticVideo((48, 80), 20, seed=4, index=i)
        vis = np.array([[s.visible_pixels > 0 for s in f.objects] for f in video])
        if vis.size:
            events += int(np.sum(vis[1:] != vis[:-1]))
    assert events >= 2


def test_camera_pans_and_zooms():
    video = SyntheticVideo(SIZE, 30, seed=0)
    cams = np.array([video.camera(t) for t in range(30)])
    assert np.ptp(cams[:, 0]) > 0 and np.ptp(cams[:, 2]) > 0


def test_degraded_frames_change_the_picture_not_the_labels():
    size, frames = (40, 64), 6
    clean = SyntheticVideo(size, frames, seed=9, config=SynthConfig(degrade_prob=0.0))
    dirty = SyntheticVideo(size, frames, seed=9, config=SynthConfig(degrade_prob=1.0))
    assert dirty[0].degradation == ()  # the first frame is never degraded
    assert np.array_equal(dirty[0].image, clean[0].image)
    kinds = set()
    for t in range(1, frames):
        c, d = clean[t], dirty[t]
        assert d.degradation and np.array_equal(c.semantic, d.semantic)
        assert not np.array_equal(c.image, d.image)
        kinds.update(d.degradation)
        deg = dirty.plan.degradations[t]
        if deg.kinds == ("light",) and max(deg.gain) < 1:
            assert d.image.mean() < c.image.mean()
    assert len(kinds) >= 2


def test_class_choice_is_configurable():
    config = SynthConfig(stuff=("wall", "floor"), things=("cat",), objects=(1, 1), others_prob=0, void_prob=0)
    wall, floor, cat = (next(c.id for c in vipseg_categories() if c.name == n) for n in ("wall", "floor", "cat"))
    seen = set()
    for frame in SyntheticVideo(SIZE, 4, seed=0, config=config):
        seen |= set(np.unique(frame.semantic).tolist())
    assert seen <= {wall, floor, cat} and {wall, floor} <= seen


@pytest.mark.parametrize("kwargs, match", [
    ({"things": ("persn",)}, "did you mean 'person'"),
    ({"stuff": ("person",)}, "thing class"),
    ({"things": ("sky",)}, "stuff class"),
    ({"objects": (3, 1)}, "objects"),
    ({"degrade_prob": 1.5}, "degrade_prob"),
])
def test_bad_config_is_a_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        plan_video(SIZE, 2, 0, config=SynthConfig(**kwargs))


def test_clip_matches_frames():
    video = SyntheticVideo(SIZE, 10, seed=0)
    clip = video.clip([1, 4, 7])
    assert tuple(clip.frames.shape) == (3, 3, *SIZE) and clip.frame_indices == (1, 4, 7)
    assert np.allclose(clip.frames[2].permute(1, 2, 0).numpy() * 255, video[7].image, atol=1e-3)
    assert np.array_equal(clip.labels[0].numpy(), video[1].semantic)


def _features(image: np.ndarray) -> np.ndarray:
    """Per-pixel colour and local texture energy (7x7 mean and standard deviation per channel)."""
    import cv2

    img = image.astype(np.float32)
    mean = cv2.blur(img, (7, 7))
    std = np.sqrt(np.maximum(cv2.blur(img * img, (7, 7)) - mean * mean, 0))
    return np.concatenate([mean, std], axis=-1).reshape(-1, 6)


def test_classes_are_separable_and_degraded_frames_are_harder():
    """A nearest-centroid classifier on colour + texture energy, fit on clean frames, labels clean frames well
    above chance, and does clearly worse on degraded frames (so context from other frames has work to do)."""
    size, frames = (64, 112), 8
    clean = SynthConfig(degrade_prob=0.0, others_prob=0.0, void_prob=0.0)
    dirty = SynthConfig(degrade_prob=1.0, others_prob=0.0, void_prob=0.0)
    feats, labels = [], []
    for i in range(6):
        for f in SyntheticVideo(size, frames, seed=21, index=i, config=clean):
            feats.append(_features(f.image))
            labels.append(f.semantic.reshape(-1))
    x, y = np.concatenate(feats), np.concatenate(labels)
    classes = np.unique(y)
    centroids = np.stack([x[y == c].mean(axis=0) for c in classes])
    scale = x.std(axis=0) + 1e-6

    def accuracy(config, index):
        hits = total = 0
        for f in SyntheticVideo(size, frames, seed=22, index=index, config=config):
            if config is dirty and f.index == 0:
                continue
            fx = _features(f.image) / scale
            pred = classes[np.argmin(((fx[:, None, :] - centroids[None] / scale) ** 2).sum(-1), axis=1)]
            hits += int((pred == f.semantic.reshape(-1)).sum())
            total += f.semantic.size
        return hits / total

    acc_clean = np.mean([accuracy(clean, i) for i in range(3)])
    acc_dirty = np.mean([accuracy(dirty, i) for i in range(3)])
    assert acc_clean > 0.6, acc_clean  # chance with ~11 classes is ~0.1-0.3
    assert acc_dirty < acc_clean - 0.1, (acc_clean, acc_dirty)
