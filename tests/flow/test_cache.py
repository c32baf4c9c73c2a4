"""The on-disk flow cache: computed once, written atomically as .flo, reused by later runs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vidseg.errors import ConfigError, DataError
from vidseg.flow import CallableFlow, DISFlow, read_flo
from vidseg.flow.cache import CachedFlow, FramePair, fill_flow_cache


class CountingFlow:
    """A deterministic backend that counts its calls."""

    needs_frames = True

    def __init__(self) -> None:
        self.calls = 0

    def fingerprint(self) -> str:
        return "counting-v1"

    def __call__(self, a, b, *, video="", stem_t="", stem_t1=""):
        self.calls += 1
        return (b.astype(np.float32) - a.astype(np.float32))[..., :2]


def _frames(seed: int, h: int = 20, w: int = 24):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_computed_once_and_reused_across_instances(tmp_path):
    a, b = _frames(0)
    backend = CountingFlow()
    cache = CachedFlow(backend, tmp_path / "flows")
    first = cache(a, b, video="v", stem_t="001", stem_t1="002")
    again = cache(a, b, video="v", stem_t="001", stem_t1="002")
    assert backend.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    path = tmp_path / "flows" / "counting-v1" / "v" / "001_002.flo"
    np.testing.assert_array_equal(read_flo(path), first)
    np.testing.assert_array_equal(again, first)
    other = CountingFlow()  # a later run (another model's predictions): no recomputation
    np.testing.assert_array_equal(CachedFlow(other, tmp_path / "flows")(a, b, video="v", stem_t="001",
                                                                        stem_t1="002"), first)
    assert other.calls == 0
    assert not list((tmp_path / "flows").rglob("*.tmp*"))  # atomic writes leave no temporaries


def test_reading_only_needs_no_frames(tmp_path):
    a, b = _frames(0)
    cache = CachedFlow(CountingFlow(), tmp_path)
    flow = cache(a, b, video="v", stem_t="1", stem_t1="2")
    reader = cache.reading_only()
    assert reader.needs_frames is False
    np.testing.assert_array_equal(reader(None, None, video="v", stem_t="1", stem_t1="2"), flow)
    with pytest.raises(DataError, match=r"2_3\.flo: flow not in the cache"):
        reader(None, None, video="v", stem_t="2", stem_t1="3")


def test_stale_size_is_recomputed(tmp_path):
    backend = CountingFlow()
    cache = CachedFlow(backend, tmp_path)
    cache(*_frames(0), video="v", stem_t="1", stem_t1="2")
    a, b = _frames(1, 30, 24)
    assert cache(a, b, video="v", stem_t="1", stem_t1="2").shape == (30, 24, 2)
    assert backend.calls == 2


def test_cache_needs_a_named_backend(tmp_path):
    with pytest.raises(ConfigError, match="names its settings"):
        CachedFlow(CallableFlow(lambda a, b: np.zeros(a.shape[:2] + (2,))), tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        CachedFlow(CountingFlow(), tmp_path / "file")


def _write_pairs(root, sizes):
    pairs = []
    for v, size in enumerate(sizes):
        paths = []
        for t in range(3):
            p = root / f"vid{v}" / f"{t:05d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_frames(10 * v + t, *(size if t < 2 else (size[0] + 2, size[1])))[0]).save(p)
            paths.append(p)
        pairs += [FramePair(f"vid{v}", f"{t:05d}", f"{t + 1:05d}", str(paths[t]), str(paths[t + 1])) for t in range(2)]
    return pairs


@pytest.mark.slow  # spawns two worker processes (importing torch): ~15 s on a loaded machine
def test_fill_in_parallel_matches_serial(tmp_path):
    pairs = _write_pairs(tmp_path / "frames", [(24, 32)])[:1] + _write_pairs(tmp_path / "frames2", [(26, 30)])[:1]
    serial = CachedFlow(DISFlow("ultrafast"), tmp_path / "serial")
    parallel = CachedFlow(DISFlow("ultrafast"), tmp_path / "parallel")
    assert fill_flow_cache(serial, pairs, workers=1, progress=False) == 2
    assert fill_flow_cache(parallel, pairs, workers=2, progress=False) == 2
    assert fill_flow_cache(parallel, pairs, workers=2, progress=False) == 0  # warm: nothing to do
    for p in pairs:
        np.testing.assert_array_equal(read_flo(serial.path(p.video, p.stem_t, p.stem_t1)),
                                      read_flo(parallel.path(p.video, p.stem_t, p.stem_t1)))


def test_frames_of_different_sizes_name_the_file(tmp_path):
    pairs = _write_pairs(tmp_path, [(24, 32)])
    with pytest.raises(DataError, match=r"00002\.jpg: frame size 32x26 differs"):
        fill_flow_cache(CachedFlow(CountingFlow(), tmp_path / "c"), pairs, progress=False)


def test_data_errors_survive_pickling():
    """Errors raised in worker processes reach the parent with the file name intact."""
    import pickle

    err = pickle.loads(pickle.dumps(DataError("v/00002.jpg", "frame size differs")))
    assert str(err) == "v/00002.jpg: frame size differs" and err.path == "v/00002.jpg"
