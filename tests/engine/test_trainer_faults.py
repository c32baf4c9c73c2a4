"""Trainer under faults (issue 11): corrupt last.pt falls back, no hard links, metrics.jsonl truncated on resume,
killed runs' temporaries removed, another model's checkpoint refused on one line, byte-identical checkpoints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _toy import ToyClips, ToyVideoModel, toy_config, train_toy  # noqa: E402

from vidseg.engine.trainer import Trainer  # noqa: E402
from vidseg.errors import DataError  # noqa: E402


def test_truncated_last_falls_back_to_newest_loadable(tmp_path):
    train_toy(tmp_path, 6)
    last, newest = tmp_path / "last.pt", tmp_path / "iter_0000006.pt"
    assert last.stat().st_ino != newest.stat().st_ino  # a copy, not a hard link
    last.write_bytes(last.read_bytes()[:100])  # truncated by a crash / full disk
    with pytest.warns(UserWarning, match=r"skipped last.pt: unreadable checkpoint.*resuming from iter_0000006.pt"):
        res, _ = train_toy(tmp_path, 6, resume=True)
    assert res.iteration == 6


def test_metrics_truncated_to_the_resumed_step_and_temporaries_removed(tmp_path):
    cfg = toy_config(6)
    Trainer(cfg, ToyVideoModel(), ToyClips(), out_dir=tmp_path).fit(until=3)  # checkpoint at 3
    with (tmp_path / "metrics.jsonl").open("a") as f:  # logged after the checkpoint, then killed
        f.write(json.dumps({"iter": 4, "loss": 1.0}) + "\n" + '{"iter": 5, "lo')
    stale = tmp_path / ".last.k1ll3d.tmp.pt"
    stale.write_bytes(b"half a checkpoint")
    train_toy(tmp_path, 6, resume=True)
    iters = [json.loads(line)["iter"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert iters == [1, 2, 3, 4, 5, 6]
    assert not stale.exists()


def test_resume_with_another_model_is_one_line(tmp_path):
    train_toy(tmp_path, 2)
    trainer = Trainer(toy_config(4), ToyVideoModel(width=4), ToyClips(), out_dir=tmp_path)
    with pytest.raises(DataError, match="last.pt") as info:
        trainer.fit(resume=True)
    assert "\n" not in str(info.value) and len(str(info.value)) < 600


def test_identical_runs_give_byte_identical_checkpoints(tmp_path):
    train_toy(tmp_path / "a", 2, dropout=0.0)
    train_toy(tmp_path / "b", 2, dropout=0.0)
    assert (tmp_path / "a" / "last.pt").read_bytes() == (tmp_path / "b" / "last.pt").read_bytes()


def test_smoke_keeps_explicit_values():
    from vidseg.config import load_config
    from vidseg.engine.build import apply_smoke

    cfg = apply_smoke(load_config("configs/cffm_b0_vspw.yaml",
                                  ["smoke=true", "data.batch_size=3", "schedule.max_iters=5"]))
    assert (cfg.data.batch_size, cfg.schedule.max_iters, cfg.data.crop_size) == (3, 5, 64)


def test_disk_full_while_logging_names_the_log(tmp_path, monkeypatch):
    import errno

    from vidseg.engine.logging import MetricLogger
    from vidseg.errors import DiskFullError

    logger = MetricLogger(tmp_path, tensorboard=False)
    real_open = Path.open

    def full(self, mode="r", *args, **kwargs):
        if self.name == "metrics.jsonl" and "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", full)
    with pytest.raises(DiskFullError, match="no space left on device while writing .*metrics.jsonl"):
        logger.log(1, {"loss": 1.0})


def test_synth_removes_a_killed_runs_staging_folder(tmp_path):
    import subprocess

    from vidseg.data.synth import generate

    dead = subprocess.Popen(["true"])
    dead.wait()  # a process id that no longer runs
    stale = tmp_path / f".ds.synth-{dead.pid}"
    (stale / "data").mkdir(parents=True)
    (stale / "data" / "big.bin").write_bytes(b"x" * 1000)
    generate("vspw", tmp_path / "ds", videos=1, frames=1, size=(16, 24), progress=False)
    assert not stale.exists() and (tmp_path / "ds" / "train.txt").is_file()
