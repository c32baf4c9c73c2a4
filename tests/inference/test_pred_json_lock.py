"""Several writers updating one VIPSeg submission's ``pred.json`` at once keep every video's entry (file lock)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from vidseg.inference import panoptic_segment
from vidseg.inference.panoptic_segment import PRED_JSON, read_pred_json, update_pred_json

PER_WRITER = 4


def _frames(video: str) -> list[dict]:
    return [{"image_id": f"{i:08d}", "file_name": f"{i:08d}.png", "segments_info": [], "video": video}
            for i in range(1, 3)]


def _slow_reads(monkeypatch) -> None:
    """Widen the read-modify-write window: a writer that read pred.json waits before writing it back."""
    def slow(path):
        data = read_pred_json(path)
        time.sleep(0.05)
        return data

    monkeypatch.setattr(panoptic_segment, "read_pred_json", slow)


def _run_threads(out: Path) -> list[str]:
    def writer(k: int) -> None:
        for i in range(PER_WRITER):
            update_pred_json(out / PRED_JSON, f"video_{k}_{i}", _frames(f"video_{k}_{i}"))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [a["video_id"] for a in json.loads((out / PRED_JSON).read_text())["annotations"]]


def test_two_threads_keep_every_entry(tmp_path, monkeypatch):
    _slow_reads(monkeypatch)
    ids = _run_threads(tmp_path)
    assert ids == sorted(f"video_{k}_{i}" for k in range(2) for i in range(PER_WRITER))
    entry = json.loads((tmp_path / PRED_JSON).read_text())["annotations"][0]
    assert entry["annotations"] == _frames(entry["video_id"])


def test_without_the_lock_entries_are_lost(tmp_path, monkeypatch):
    """The check above can fail: with the lock replaced by nothing, the same writers lose entries."""
    _slow_reads(monkeypatch)
    monkeypatch.setattr(panoptic_segment, "file_lock", lambda path: contextlib.nullcontext())
    assert len(_run_threads(tmp_path)) < 2 * PER_WRITER


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl lock")
def test_two_processes_keep_every_entry(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from vidseg.inference import panoptic_segment as ps
        real = ps.read_pred_json
        def slow(path):
            data = real(path)
            time.sleep(0.05)
            return data
        ps.read_pred_json = slow
        k = sys.argv[1]
        Path(sys.argv[2], "ready_" + k).touch()
        while not all(Path(sys.argv[2], "ready_" + j).exists() for j in ("0", "1")):
            time.sleep(0.01)
        for i in range({PER_WRITER}):
            ps.update_pred_json(Path(sys.argv[2]) / "pred.json", f"video_{{k}}_{{i}}", [])
    """)
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k), str(tmp_path)]) for k in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    ids = [a["video_id"] for a in json.loads((tmp_path / PRED_JSON).read_text())["annotations"]]
    assert ids == sorted(f"video_{k}_{i}" for k in range(2) for i in range(PER_WRITER))
