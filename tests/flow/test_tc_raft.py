"""TC with RAFT flow equals the official VSPW TC_cal.py.

The official numbers come from running VSPW-dataset/VSPW_code TC_cal.py on CPU (``.cuda()`` calls removed,
nothing else changed) on the synthetic data of ``tc_raft_case.py``, with the random RAFT weights of
``write_tc_weights`` saved as its ``RAFT_core/raft-things.pth-no-zip``; one torch thread on both sides.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from vidseg.cli.main import main
from vidseg.data.synth import generate
from vidseg.errors import ConfigError, DataError
from vidseg.flow import RAFTFlow, build_flow_backend
from vidseg.metrics.vspw import evaluate_vspw_folder

from .tc_raft_case import make_many_videos_case, make_tc_case, write_tc_weights

# TC_cal.py output ("TC score is ...") on make_tc_case: 3 val videos x 4 frames (9 pairs)
OFFICIAL_TC = 0.13317199406104355
# sha256 of the case's origin JPEGs in sorted order, as the official run saw them (an other JPEG encoder
# would give other frames, hence other flows: the comparison is then skipped, not failed)
FRAMES_SHA256 = "cbd260f443f460447bab8a4298143f4abae50ac46d2ea60be547c3d2f106d921"
# TC_cal.py on make_many_videos_case: 102 val videos of 2 frames, of which it scores the first 100
OFFICIAL_TC_FIRST_100 = 0.7283537661154855
FRAMES_101_SHA256 = "41ba456ff0073be69aeae8d6e1c61d2c54d205b636bf912963efacfcf5ad5b5c"


def _frames_digest(root) -> str:
    h = hashlib.sha256()
    for path in sorted((root / "data").glob("*/origin/*.jpg")):
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the official numbers were computed with one thread
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_tc_raft_equals_official_script(tmp_path, one_thread):
    data, pred = make_tc_case(tmp_path)
    if FRAMES_SHA256 and _frames_digest(data) != FRAMES_SHA256:
        pytest.skip("synthetic JPEGs differ from the ones the official run used (another JPEG encoder)")
    flow = RAFTFlow(write_tc_weights(tmp_path / "raft-things.pth"))
    res = evaluate_vspw_folder(data, pred, metrics="tc", flow=flow, progress=False)
    assert res["tc_pairs"] == 9
    assert abs(res["TC"] - OFFICIAL_TC) < 1e-9


@pytest.mark.slow
def test_official_protocol_scores_the_first_100_videos(tmp_path):
    """102 videos in val.txt: the official script stops after 100; ``tc_videos=None`` scores all 102."""
    data, pred = make_many_videos_case(tmp_path)
    if _frames_digest(data) != FRAMES_101_SHA256:
        pytest.skip("synthetic JPEGs differ from the ones the official run used (another JPEG encoder)")
    flow = build_flow_backend("raft", weights=write_tc_weights(tmp_path / "w.pth"), cache=tmp_path / "flows")
    res = evaluate_vspw_folder(data, pred, metrics="tc", flow=flow, workers=2, progress=False)
    assert res["tc_pairs"] == 100
    assert abs(res["TC"] - OFFICIAL_TC_FIRST_100) < 1e-9
    every = evaluate_vspw_folder(data, pred, metrics="tc", flow=flow, tc_videos=None, progress=False)
    assert every["tc_pairs"] == 102 and abs(every["TC"] - OFFICIAL_TC_FIRST_100) > 1e-6


@pytest.mark.slow
def test_cli_raft_with_cache_and_workers(tmp_path, one_thread, capsys):
    """``vidseg eval vspw --flow raft --flow-cache --workers 2``: official TC, cache filled once, reused."""
    data, pred = make_tc_case(tmp_path)
    if _frames_digest(data) != FRAMES_SHA256:
        pytest.skip("synthetic JPEGs differ from the ones the official run used (another JPEG encoder)")
    weights = write_tc_weights(tmp_path / "raft-things.pth")
    args = ["eval", "vspw", "--root", str(data), "--pred", str(pred), "--metrics", "tc", "--flow", "raft",
            "--flow-weights", str(weights), "--flow-cache", str(tmp_path / "flows"), "--no-progress"]
    assert main([*args, "--workers", "2", "--json", str(tmp_path / "a.json")]) == 0
    flos = sorted((tmp_path / "flows").rglob("*.flo"))
    assert len(flos) == 9
    stamps = [f.stat().st_mtime_ns for f in flos]
    assert main([*args, "--json", str(tmp_path / "b.json")]) == 0  # warm: nothing recomputed
    assert [f.stat().st_mtime_ns for f in flos] == stamps
    for name in ("a.json", "b.json"):
        assert abs(json.loads((tmp_path / name).read_text())["TC"] - OFFICIAL_TC) < 1e-9


def test_flow_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="needs --flow-weights"):
        build_flow_backend("raft")
    with pytest.raises(ConfigError, match="takes no weights"):
        build_flow_backend("dis", weights=tmp_path / "w.pth")
    (tmp_path / "w.pth").write_bytes(b"")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no usable CUDA"):
            build_flow_backend("raft", weights=tmp_path / "w.pth", device="cuda")


def test_frames_of_different_sizes_in_one_video(tmp_path):
    data = tmp_path / "vspw"
    generate("vspw", data, videos=1, frames=3, size=(48, 64), seed=0, val_fraction=1.0, progress=False)
    video = sorted(p.name for p in (data / "data").iterdir())[0]
    origin = data / "data" / video / "origin"
    Image.fromarray(np.zeros((50, 64, 3), np.uint8)).save(origin / "00000002.jpg")
    pred = tmp_path / "pred"
    for mask in (data / "data" / video / "mask").glob("*.png"):
        (pred / video).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(pred / video / mask.name)
    with pytest.raises(DataError, match=r"origin/00000002\.jpg: frame size 64x50 differs"):
        evaluate_vspw_folder(data, pred, split="all", metrics="tc", flow="dis", progress=False)
    with pytest.raises(DataError, match=r"origin/00000002\.jpg: frame size 64x50 differs"):
        evaluate_vspw_folder(data, pred, split="all", metrics="tc",
                             flow=build_flow_backend("dis", cache=tmp_path / "c"), progress=False)
