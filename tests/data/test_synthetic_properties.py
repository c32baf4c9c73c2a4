"""Property tests of the synthetic generator: label invariants and official encodings for random configs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vidseg.data.synth import (
    DEFAULT_STUFF,
    DEFAULT_THINGS,
    SynthConfig,
    SyntheticVideo,
    davis_mask,
    davis_targets,
    vipseg_instance_lut,
    vipseg_raw_mask,
    vspw_raw_mask,
)
from vidseg.data.vipseg import vipseg_raw_to_panoptic
from vidseg.data.vspw import vspw_raw_to_label

configs = st.builds(
    SynthConfig,
    stuff=st.lists(st.sampled_from(DEFAULT_STUFF + ("wall", "floor", "sea")), min_size=1, max_size=5,
                   unique=True).map(tuple),
    things=st.lists(st.sampled_from(DEFAULT_THINGS + ("cat", "bus")), min_size=1, max_size=3,
                    unique=True).map(tuple),
    objects=st.tuples(st.integers(0, 3), st.integers(0, 4)).map(lambda t: (min(t), max(t))),
    degrade_prob=st.floats(0, 1),
    others_prob=st.floats(0, 1),
    void_prob=st.floats(0, 1),
)


@settings(max_examples=25, deadline=None)
@given(config=configs, seed=st.integers(0, 2**31), index=st.integers(0, 50),
       h=st.integers(8, 40), w=st.integers(8, 56), t=st.integers(0, 5))
def test_label_invariants_and_official_encodings(config, seed, index, h, w, t):
    video = SyntheticVideo((h, w), 6, seed=seed, index=index, config=config)
    frame = video[t]
    cats = set(config.stuff_ids()) | set(config.thing_ids())
    assert set(np.unique(frame.semantic).tolist()) <= cats | {255}
    assert np.all(frame.semantic[frame.void] == 255)
    assert np.all(frame.instance[frame.semantic == 255] == 0)
    by_track = {o.track_id: o.category for o in video.plan.objects}
    for track in np.unique(frame.instance[frame.instance > 0]).tolist():
        assert np.all(frame.semantic[frame.instance == track] == by_track[track])
    # the official encodings decode back (with the readers' decoders) to the library labels
    raw = vspw_raw_mask(frame)
    assert np.array_equal(vspw_raw_to_label(raw), frame.semantic)
    assert np.array_equal(raw == 255, frame.void)
    category, instance = vipseg_raw_to_panoptic(vipseg_raw_mask(frame, vipseg_instance_lut(video.plan)))
    assert np.array_equal(category, frame.semantic)
    assert np.array_equal(instance > 0, frame.instance > 0)
    targets = davis_targets(video[0])
    ids = davis_mask(frame, targets)
    for track, obj in targets.items():
        assert np.array_equal(ids == obj, frame.instance == track)
    assert np.array_equal(ids == 255, frame.void)
