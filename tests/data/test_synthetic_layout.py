"""On-disk synthetic datasets: exact official layouts and formats, determinism, readers, atomic output."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidseg.categories import davis_palette, thing_ids
from vidseg.data.synth import (
    SynthConfig,
    SyntheticVideo,
    davis_mask,
    davis_targets,
    generate,
    vipseg_instance_lut,
    vipseg_raw_mask,
    vspw_raw_mask,
)
from vidseg.data.synth import writer as synthetic
from vidseg.errors import ConfigError, DataError

SIZE = (40, 64)
FRAMES = 4
CONFIG = SynthConfig(others_prob=0.5, void_prob=0.5, degrade_prob=0.3)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synth")
    out = {}
    for kind in ("vspw", "vipseg", "davis"):
        out[kind] = base / kind
        generate(kind, out[kind], videos=3, frames=FRAMES, size=SIZE, seed=7, config=CONFIG,
                 val_fraction=1 / 3, test_fraction=0.0 if kind == "davis" else 1 / 3, progress=False)
    return out


def _video(kind: str, index: int) -> SyntheticVideo:
    return SyntheticVideo(SIZE, FRAMES, seed=7, index=index, config=CONFIG)


def test_vspw_layout_and_formats(datasets):
    root = datasets["vspw"]
    names = [synthetic.video_name("vspw", i) for i in range(3)]
    assert (root / "train.txt").read_text() == f"{names[0]}\n"
    assert (root / "val.txt").read_text() == f"{names[1]}\n"
    assert (root / "test.txt").read_text() == f"{names[2]}\n"
    want_json = resources.files("vidseg").joinpath("resources", "vspw_label_num_dic.json").read_bytes()
    assert (root / "label_num_dic_final.json").read_bytes() == want_json
    assert sorted(p.name for p in (root / "data").iterdir()) == names
    for i, name in enumerate(names):
        origin = root / "data" / name / "origin"
        assert [p.name for p in sorted(origin.iterdir())] == [f"{t:08d}.jpg" for t in range(1, FRAMES + 1)]
        if i == 2:  # test videos have no masks, as in the official release
            assert not (root / "data" / name / "mask").exists()
            continue
        video = _video("vspw", i)
        for t in range(FRAMES):
            with Image.open(origin / f"{t + 1:08d}.jpg") as img:
                assert img.format == "JPEG" and img.mode == "RGB" and img.size == (SIZE[1], SIZE[0])
                jpg = np.asarray(img)
            with Image.open(root / "data" / name / "mask" / f"{t + 1:08d}.png") as img:
                assert img.format == "PNG" and img.mode == "L"
                raw = np.asarray(img)
            frame = video[t]
            assert np.array_equal(raw, vspw_raw_mask(frame))  # GT is exactly what was drawn
            assert set(np.unique(raw).tolist()) <= set(range(125)) | {255}
            if frame.degradation:  # JPEG smooths added noise away: compare the average colour
                assert np.abs(jpg.mean(axis=(0, 1)) - frame.image.mean(axis=(0, 1))).max() < 4
            else:
                assert np.abs(jpg.astype(int) - frame.image).mean() < 8  # JPEG of the drawn frame


def test_vspw_raw_values_cover_others_and_void():
    frames = [f for i in range(8) for f in SyntheticVideo(SIZE, 3, seed=1, index=i, config=CONFIG)]
    values = set()
    for f in frames:
        values |= set(np.unique(vspw_raw_mask(f)).tolist())
    assert 0 in values and 255 in values and any(1 <= v <= 124 for v in values)


def test_vipseg_layout_and_16bit_encoding(datasets):
    root = datasets["vipseg"]
    names = [synthetic.video_name("vipseg", i) for i in range(3)]
    assert (root / "label_num_dic_final.json").is_file()
    assert [(root / f"{s}.txt").read_text().split() for s in ("train", "val", "test")] == [[n] for n in names]
    assert not (root / "panomasks" / names[2]).exists()
    things = set(thing_ids())
    saw_thing = False
    for i in range(2):
        video = _video("vipseg", i)
        lut = vipseg_instance_lut(video.plan)
        for t in range(FRAMES):
            assert (root / "imgs" / names[i] / f"{t + 1:08d}.jpg").is_file()
            with Image.open(root / "panomasks" / names[i] / f"{t + 1:08d}.png") as img:
                assert img.mode == "I;16"
                raw = np.asarray(img)
            frame = video[t]
            assert np.array_equal(raw, vipseg_raw_mask(frame, lut))
            stuff = raw[(raw > 0) & (raw < 125)]
            assert np.all(stuff - 1 < 124) and not (set((stuff - 1).tolist()) & things)
            thing_vals = raw[raw >= 125]
            assert all(v // 100 - 1 in things for v in thing_vals.tolist())
            # a track keeps one raw value in every frame
            for obj in video.plan.objects:
                vals = np.unique(raw[frame.instance == obj.track_id])
                assert vals.size <= 1 and (vals.size == 0 or vals[0] == lut[obj.track_id])
                saw_thing |= vals.size == 1 and vals[0] >= 100
            assert np.all(raw[frame.void] == 0) and np.all(raw[frame.semantic == 255] == 0)
    assert saw_thing


def test_vipseg_instance_numbers_count_per_category():
    config = SynthConfig(things=("person",), objects=(3, 3))
    video = SyntheticVideo(SIZE, 1, seed=0, config=config)
    lut = vipseg_instance_lut(video.plan)
    assert lut[1:].tolist() == [6100, 6101, 6102]  # person is raw category 61, instances from 0


def test_davis_layout_palette_and_objects(datasets):
    root = datasets["davis"]
    names = [synthetic.video_name("davis", i) for i in range(3)]
    for year in ("2016", "2017"):
        assert (root / "ImageSets" / year / "train.txt").read_text().split() == names[:2]
        assert (root / "ImageSets" / year / "val.txt").read_text().split() == names[2:]
    for i, name in enumerate(names):
        video = _video("davis", i)
        targets = davis_targets(video[0])
        assert targets and sorted(targets.values()) == list(range(1, len(targets) + 1))
        files = sorted((root / "Annotations" / "480p" / name).iterdir())
        assert [p.name for p in files] == [f"{t:05d}.png" for t in range(FRAMES)]
        assert (root / "JPEGImages" / "480p" / name / "00000.jpg").is_file()
        for t, path in enumerate(files):
            with Image.open(path) as img:
                assert img.mode == "P"
                pal = np.array(img.getpalette()[: 256 * 3], dtype=np.uint8).reshape(-1, 3)
                ids = np.asarray(img)
            assert np.array_equal(pal, davis_palette())
            assert np.array_equal(ids, davis_mask(video[t], targets))
            assert set(np.unique(ids).tolist()) <= set(range(len(targets) + 1)) | {255}
        with Image.open(files[0]) as img:
            assert set(np.unique(np.asarray(img)).tolist()) - {0, 255} == set(targets.values())


def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    kwargs = dict(videos=2, frames=3, size=(24, 40), config=CONFIG, progress=False)
    generate("vipseg", tmp_path / "a", seed=3, **kwargs)
    generate("vipseg", tmp_path / "b", seed=3, **kwargs)
    generate("vipseg", tmp_path / "c", seed=4, **kwargs)
    a, b, c = (_digest(tmp_path / k) for k in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_readers_accept_the_synthetic_layouts(datasets):
    from vidseg.data.davis import DAVISDataset
    from vidseg.data.vipseg import VIPSegRawDataset
    from vidseg.data.vspw import VSPWDataset

    vspw = VSPWDataset(datasets["vspw"], split="train")
    frame, label = vspw[0].load_sample(2)
    assert frame.shape == (*SIZE, 3)
    assert np.array_equal(label, _video("vspw", 0)[2].semantic)
    assert len(VSPWDataset(datasets["vspw"], split="test")[0]) == FRAMES

    vip = VIPSegRawDataset(datasets["vipseg"], split="val")
    cat, inst = vip[0].load_panoptic(1)
    truth = _video("vipseg", 1)[1]
    assert np.array_equal(cat, truth.semantic)
    assert np.array_equal(inst > 0, truth.instance > 0)

    davis = DAVISDataset(datasets["davis"], year=2017, split="val")
    assert davis[0].object_ids() == sorted(davis_targets(_video("davis", 2)[0]).values())
    davis16 = DAVISDataset(datasets["davis"], year=2016, split="train")
    assert set(np.unique(davis16[0].load_label(0)).tolist()) <= {0, 1, 255}


def test_check_finds_no_problem(datasets):
    from vidseg.data.tools.check import check_path

    for kind, layout in (("vspw", None), ("vipseg", "vipseg-raw"), ("davis", "davis")):
        report = check_path(datasets[kind], layout)
        assert report.ok, [str(p) for p in report.problems]


def test_refuses_non_empty_output_and_overwrites_only_datasets(tmp_path):
    kwargs = dict(videos=1, frames=1, size=(16, 16), progress=False)
    generate("vspw", tmp_path / "d", **kwargs)
    with pytest.raises(DataError, match="not empty"):
        generate("vspw", tmp_path / "d", **kwargs)
    generate("vspw", tmp_path / "d", seed=1, overwrite=True, **kwargs)
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="does not look like"):
        generate("vspw", other, overwrite=True, **kwargs)
    assert (other / "notes.txt").read_text() == "keep me"
    (tmp_path / "empty").mkdir()
    generate("davis", tmp_path / "empty", **kwargs)
    assert (tmp_path / "empty" / "ImageSets" / "2017" / "train.txt").is_file()


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing(path, image):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        Image.fromarray(image).save(path, format="JPEG")

    monkeypatch.setattr(synthetic, "_save_jpeg", failing)
    with pytest.raises(KeyboardInterrupt):
        generate("vspw", tmp_path / "out", videos=2, frames=2, size=(16, 16), progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, err", [
    ({"kind": "cityscapes"}, ConfigError),
    ({"kind": "davis", "test_fraction": 0.5}, ConfigError),
    ({"kind": "vspw", "videos": 0}, ConfigError),
    ({"kind": "vspw", "val_fraction": 0.8, "test_fraction": 0.5}, ConfigError),
])
def test_bad_arguments(tmp_path, kwargs, err):
    args = dict(out=tmp_path / "x", frames=1, size=(16, 16), progress=False)
    args.update(kwargs)
    with pytest.raises(err):
        generate(**args)
    assert not (tmp_path / "x").exists()


def test_split_counts():
    names = [f"v{i}" for i in range(10)]
    s = synthetic.split_videos(names, 0.3, 0.2)
    assert [len(s[k]) for k in ("train", "val", "test")] == [5, 3, 2]
    assert synthetic.split_videos(["a", "b"], 0.4, 0.0) == {"train": ["a"], "val": ["b"], "test": []}
    assert synthetic.split_videos(["a"], 0.4, 0.0) == {"train": ["a"], "val": [], "test": []}
