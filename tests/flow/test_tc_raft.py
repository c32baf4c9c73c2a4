"""TC with RAFT flow equals the official VSPW TC_cal.py.

The official numbers come from running VSPW-dataset/VSPW_code TC_cal.py on CPU (``.cuda()`` calls removed,
nothing else changed) on the synthetic data of ``tc_raft_case.py``, with the random RAFT weights of
``write_tc_weights`` saved as its ``RAFT_core/raft-things.pth-no-zip``; one torch thread on both sides.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

from vidseg.flow.raft_backend import RAFTFlow
from vidseg.metrics.vspw import evaluate_vspw_folder

from .tc_raft_case import make_many_videos_case, make_tc_case, write_tc_weights

# TC_cal.py output ("TC score is ...") on make_tc_case: 3 val videos x 4 frames (9 pairs)
OFFICIAL_TC = 0.13317199406104355
# sha256 of the case's origin JPEGs in sorted order, as the official run saw them (an other JPEG encoder
# would give other frames, hence other flows: the comparison is then skipped, not failed)
FRAMES_SHA256 = "cbd260f443f460447bab8a4298143f4abae50ac46d2ea60be547c3d2f106d921"


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
