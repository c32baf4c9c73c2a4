"""``vidseg train``: one-line config errors, --print-config, smoke run, --resume of a finished run."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidseg.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_key_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(ROOT / "configs/cffm_b0_vspw.yaml"), "--set", "optim.lrr=1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "did you mean 'lr'" in err


def test_print_config_applies_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(ROOT / "configs/tcb_ppm_r101_vspw.yaml"), "--set", "optim.lr=0.5", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.5" in out and "name: tcb_ppm_r101_vspw" in out


def test_missing_root_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", str(ROOT / "configs/segformer_b0_vspw.yaml"), "--out", str(tmp_path)])
    assert code == 2 and "data.root is not set" in capsys.readouterr().err


def test_smoke_train_then_resume_finished_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", str(ROOT / "configs/segformer_b0_vspw.yaml"), "--set", "smoke=true",
            "--set", "model.kwargs={embed_dim: 32}", "--out", str(tmp_path), "--no-eval"]
    assert main(args) == 0
    assert "done: 2 iterations" in capsys.readouterr().out
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "config.yaml").is_file()
    assert main([*args, "--resume"]) == 0  # nothing left to do: loads and finishes at once
    assert "done: 2 iterations" in capsys.readouterr().out
