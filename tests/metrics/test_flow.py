"""The official flowwarp reproduction, an independent arithmetic reference, and the flow backends."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidseg.errors import DataError
from vidseg.flow import CallableFlow, DISFlow, FileFlow, flowwarp, make_flow_backend, read_flo, write_flo

from .brute_force_vspw_davis import bf_flowwarp


@st.composite
def labels_and_flow(draw):
    h = draw(st.integers(1, 7))
    w = draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    lab = rng.integers(1, 124, (h, w)).astype(np.uint8)
    kind = draw(st.sampled_from(["normal", "integer", "quarter", "zero"]))
    if kind == "normal":
        fl = rng.normal(0, 3, (h, w, 2))
    elif kind == "integer":  # integer flows hit the half-way ties of the W/(W-1) stretch
        fl = rng.integers(-3, 4, (h, w, 2))
    elif kind == "quarter":
        fl = rng.integers(-12, 13, (h, w, 2)) / 4
    else:
        fl = np.zeros((h, w, 2))
    return lab, fl.astype(np.float32)


@settings(max_examples=250, deadline=None)
@given(labels_and_flow())
def test_flowwarp_matches_described_arithmetic(case):
    lab, fl = case
    np.testing.assert_array_equal(flowwarp(lab, fl), bf_flowwarp(lab, fl))


def test_zero_flow_quirk_at_480p():
    """Spec §1.4: with zero flow the bottom row (H=480, even) and last column (W=854, even) become 0."""
    lab = np.full((480, 854), 9, np.uint8)
    out = flowwarp(lab, np.zeros((480, 854, 2), np.float32))
    assert (out[-1] == 0).all() and (out[:, -1] == 0).all()
    assert (out[:-1, :-1] == 9).all()
    # odd sizes keep the last row/column (H - 0.5 rounds down to the even H - 1)
    lab = np.arange(15, dtype=np.uint8).reshape(3, 5) + 1
    np.testing.assert_array_equal(flowwarp(lab, np.zeros((3, 5, 2), np.float32)), lab)


def test_flowwarp_bad_shape():
    with pytest.raises(DataError):
        flowwarp(np.zeros((4, 4), np.uint8), np.zeros((4, 5, 2), np.float32))


def test_flo_round_trip_and_file_backend(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(5, 6, 2)).astype(np.float32)
    write_flo(tmp_path / "v" / "a.flo", flow)
    np.testing.assert_array_equal(read_flo(tmp_path / "v" / "a.flo"), flow)
    np.save(tmp_path / "v" / "b.npy", flow * 2)
    backend = make_flow_backend(str(tmp_path))
    assert isinstance(backend, FileFlow)
    np.testing.assert_array_equal(backend(None, None, video="v", stem_t="a", stem_t1="b"), flow)
    np.testing.assert_array_equal(backend(None, None, video="v", stem_t="b", stem_t1="c"), flow * 2)
    with pytest.raises(DataError, match="flow file not found"):
        backend(None, None, video="v", stem_t="zz", stem_t1="")
    (tmp_path / "v" / "bad.flo").write_bytes(b"xxxxxxxxxxxxxxxx")
    with pytest.raises(DataError, match="magic"):
        read_flo(tmp_path / "v" / "bad.flo")


def test_dis_recovers_a_shift():
    """DIS flow from t to t+1 of a textured image shifted right by 3 px is about (+3, 0)."""
    rng = np.random.default_rng(1)
    base = (rng.random((80, 120)) * 255).astype(np.uint8)
    import cv2

    base = cv2.GaussianBlur(base, (5, 5), 1.5)
    f0 = np.stack([base[:, 3:-3]] * 3, -1)
    f1 = np.stack([base[:, 0:-6]] * 3, -1)
    flow = make_flow_backend("dis")(f0, f1, video="v", stem_t="0", stem_t1="1")
    assert isinstance(make_flow_backend("dis:fast"), DISFlow)
    assert flow.shape == (80, 114, 2)
    inner = flow[10:-10, 10:-10]
    assert abs(np.median(inner[..., 0]) - 3) < 0.5 and abs(np.median(inner[..., 1])) < 0.5


def test_callable_backend_accepts_chw_tensors():
    import torch

    backend = make_flow_backend(lambda a, b: torch.ones(2, 4, 5))
    assert isinstance(backend, CallableFlow)
    out = backend(np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    assert out.shape == (4, 5, 2) and out.dtype == np.float32
