"""Pipelining (issue 13): frames read ahead and masks written behind on helper threads give the same files.

The mechanism (:mod:`vidseg.inference.pipeline`) is checked directly (order kept under random delays, a
failure raised in the caller at its position, later jobs dropped, an abandoned reader stopped), and through
``vidseg segment``: the PNGs and the overlay are byte-identical with and without ``--no-pipeline``, and a
corrupt frame or a failing write ends in the usual one-line error naming the file.
"""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from vidseg.cli.main import main
from vidseg.errors import DataError
from vidseg.inference.pipeline import OrderedJobs, read_ahead

SIZE = (32, 48)


def _jittered(n: int, seed: int = 0):
    rng = random.Random(seed)
    for i in range(n):
        time.sleep(rng.random() * 0.003)
        yield i


def test_read_ahead_keeps_order_and_bounds_the_queue():
    produced = []

    def source():
        for i in _jittered(40):
            produced.append(i)
            yield i

    seen = []
    for item in read_ahead(source(), depth=3):
        seen.append(item)
        time.sleep(0.002)
        assert len(produced) - len(seen) <= 3 + 1  # the queue plus the item being put
    assert seen == list(range(40))
    assert list(read_ahead(iter(range(5)), depth=0)) == list(range(5))  # depth 0: on the calling thread


def test_read_ahead_raises_at_the_failing_item():
    def source():
        yield from range(3)
        raise DataError("video/00000004.jpg", "unreadable image")

    got = []
    with pytest.raises(DataError, match=r"video/00000004.jpg: unreadable image"):
        for item in read_ahead(source(), depth=2):
            got.append(item)
    assert got == [0, 1, 2]


def test_read_ahead_stops_its_thread_when_abandoned():
    before = threading.active_count()
    stream = read_ahead(iter(range(10_000)), depth=2)
    assert next(stream) == 0
    stream.close()
    assert threading.active_count() == before


def test_ordered_jobs_keep_order_and_raise_the_first_failure():
    done = []
    with OrderedJobs(depth=2) as jobs:
        for i in range(30):
            jobs.submit(lambda i: (time.sleep(random.random() * 0.002), done.append(i)), i)
    assert done == list(range(30))

    done.clear()

    def job(i):
        if i == 5:
            raise DataError(f"out/{i:08d}.png", "is a folder; expected a file path")
        done.append(i)

    with pytest.raises(DataError, match=r"out/00000005.png: is a folder"), OrderedJobs(depth=2) as jobs:
        for i in range(20):
            jobs.submit(job, i)
    assert done == [0, 1, 2, 3, 4]  # nothing after the failure ran

    with pytest.raises(DataError):  # disabled: the job runs (and fails) inside submit
        OrderedJobs(enabled=False).submit(job, 5)


# ------------------------------------------------------------------------------------------- through segment
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from vidseg.models import build
    from vidseg.models.checkpoint import save_weights

    root = tmp_path_factory.mktemp("pipe")
    frames = root / "walk"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray(rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)).save(frames / f"{i + 1:05d}.jpg")
    torch.manual_seed(3)
    model = build("segformer_b0", num_classes=7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    weights = root / "w.safetensors"
    save_weights(model, weights)
    return root, frames, weights


def _segment(setup, out, *extra):
    root, frames, weights = setup
    return main(["segment", str(frames), "--model", "segformer_b0", "--weights", str(weights), "--num-classes",
                 "7", "--img-scale", "none", "--size-divisor", "1", "--quiet", "--out", str(out), *extra])


def test_segment_files_identical_with_and_without_pipeline(setup, tmp_path):
    for name, extra in (("piped", []), ("plain", ["--no-pipeline"])):
        assert _segment(setup, tmp_path / name, "--overlay", str(tmp_path / f"{name}.mp4"), *extra) == 0
    a, b = sorted((tmp_path / "piped").rglob("*.png")), sorted((tmp_path / "plain").rglob("*.png"))
    assert [p.name for p in a] == [f"{i:05d}.png" for i in range(1, 8)] == [p.name for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    assert (tmp_path / "piped.mp4").read_bytes() == (tmp_path / "plain.mp4").read_bytes()
    # resume with the pipeline: a removed mask is written again, identical; the overlay reads the others back
    (tmp_path / "piped" / "walk" / "00003.png").unlink()
    assert _segment(setup, tmp_path / "piped", "--overlay", str(tmp_path / "resumed.mp4")) == 0
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    assert (tmp_path / "resumed.mp4").read_bytes() == (tmp_path / "plain.mp4").read_bytes()


@pytest.mark.parametrize("pipeline", [True, False])
def test_corrupt_frame_is_the_usual_one_line_error(setup, tmp_path, capsys, pipeline):
    root, frames, weights = setup
    broken = tmp_path / "walk"
    broken.mkdir()
    for path in sorted(frames.iterdir()):
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / "00004.jpg").write_bytes(b"not a jpeg")
    capsys.readouterr()
    code = main(["segment", str(broken), "--model", "segformer_b0", "--weights", str(weights), "--num-classes", "7",
                 "--img-scale", "none", "--size-divisor", "1", "--quiet", "--out", str(tmp_path / "out"),
                 *([] if pipeline else ["--no-pipeline"])])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "00004.jpg" in err, err
    written = sorted(p.name for p in (tmp_path / "out" / "walk").glob("*.png"))
    assert written == ["00001.png", "00002.png", "00003.png"]  # the frames before it were finished


def test_writer_failure_is_the_usual_one_line_error(setup, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "walk" / "00002.png").mkdir(parents=True)  # a folder where a mask must go
    capsys.readouterr()
    code = _segment(setup, out)
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "00002.png: is a folder; expected a file path" in err, err
    assert (out / "walk" / "00001.png").is_file() and not (out / "walk" / "00003.png").exists()


@pytest.mark.slow  # about 20 s on the loaded 2-core machine (STCNN twice)
def test_object_writer_identical_with_and_without_pipeline(tmp_path):
    """The VOS writer (STCNN from a first-frame mask): masks and overlay the same either way."""
    from vidseg.data.davis import write_davis_mask
    from vidseg.inference.vos import StcnnVosPredictor
    from vidseg.inference.vos_segment import segment_object_video
    from vidseg.models.vos.stcnn import build_stcnn

    torch.manual_seed(0)
    predictor = StcnnVosPredictor(build_stcnn(layers=(1, 1, 1, 1), width=8, fpn_dim=16, ppm_dim=16))
    folder = tmp_path / "bear"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for t in range(4):
        Image.fromarray(rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)).save(folder / f"{t:05d}.png")
    mask = np.zeros(SIZE, np.uint8)
    mask[4:14, 4:20], mask[18:28, 24:44] = 1, 2
    write_davis_mask(tmp_path / "first.png", mask)
    for name, pipeline in (("piped", True), ("plain", False)):
        row = segment_object_video(predictor, folder, tmp_path / "first.png", tmp_path / name,
                                   overlay=tmp_path / f"{name}.mp4", progress=False, pipeline=pipeline)
        assert row["written"] == 4
    a, b = sorted((tmp_path / "piped").glob("*.png")), sorted((tmp_path / "plain").glob("*.png"))
    assert len(a) == 4 and [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert (tmp_path / "piped.mp4").read_bytes() == (tmp_path / "plain.mp4").read_bytes()
