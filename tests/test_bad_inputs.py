"""Bad inputs and faults (issue 11): one table of case -> expected message fragment, run in-process.

Each case builds its command line from tiny synthetic data made once for the module (``vidseg synth`` library
calls, 32x48 frames), runs ``vidseg.cli.main.main`` and checks: non-zero exit, no traceback, and the message
fragment on stderr (parser errors exit through ``SystemExit(2)``). Cases that need a fault injected (disk full,
a closed stdout) or a sequence of runs are separate tests below the table.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from vidseg.cli.main import main
from vidseg.data.synth import generate

SIZE = (32, 48)
FAST = ["--img-scale", "none", "--size-divisor", "1", "--quiet"]  # segment frames as they are


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> SimpleNamespace:
    """Tiny datasets and weights shared by every case (made once)."""
    from vidseg.models import build
    from vidseg.models.checkpoint import save_weights

    root = tmp_path_factory.mktemp("bad")
    vspw = generate("vspw", root / "vspw", videos=2, frames=3, size=SIZE, progress=False).root
    vipseg = generate("vipseg", root / "vipseg", videos=2, frames=3, size=SIZE, progress=False).root
    torch.manual_seed(0)
    seg_w = root / "segformer_b0.safetensors"
    save_weights(build("segformer_b0"), seg_w)
    cffm_w = root / "cffm_b0.safetensors"
    save_weights(build("cffm_b0"), cffm_w)
    video = vspw / "data" / "1000_synth_0000" / "origin"
    a_file = root / "a_file.txt"
    a_file.write_text("not a folder\n")
    a_dir = root / "a_dir"
    a_dir.mkdir()
    return SimpleNamespace(root=root, vspw=vspw, vipseg=vipseg, seg_w=seg_w, cffm_w=cffm_w, video=video,
                           a_file=a_file, a_dir=a_dir)


def run_cli(argv: list, capsys) -> tuple[int, str, str]:
    """``vidseg <argv>`` in-process: (exit code, stdout, stderr)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse errors
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def fresh(d: SimpleNamespace, name: str) -> Path:
    """A new empty folder for one case."""
    path = d.root / "cases" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _segment(d, *extra):
    return ["segment", d.video, "--model", "segformer_b0", *FAST, *extra]


# case id -> (argv builder, expected fragment of the one-line error)
CASES = {
    # numbers checked by the parser, naming the option (cli/argtypes)
    "convert height 0": (lambda d: ["convert", "vspw-480p", "--src", d.vspw, "--out", d.root / "c0",
                                    "--height", "0"], "argument --height: must be an integer >= 1, got '0'"),
    "convert height -5": (lambda d: ["convert", "vspw-480p", "--src", d.vspw, "--out", d.root / "c0",
                                     "--height", "-5"], "argument --height: must be an integer >= 1"),
    "segment num-classes 0": (lambda d: _segment(d, "--out", d.root / "s0", "--num-classes", "0"),
                              "argument --num-classes: must be an integer >= 1"),
    "synth val-fraction 2": (lambda d: ["synth", "vspw", "--out", d.root / "x", "--val-fraction", "2"],
                             "argument --val-fraction: must be a number >= 0 and <= 1"),
    "eval workers 0": (lambda d: ["eval", "vspw", "--root", d.vspw, "--pred", d.a_dir, "--workers", "0"],
                       "argument --workers"),
    # models and weights
    "segment a backbone": (lambda d: ["segment", d.video, "--model", "mit_b0", "--out", d.root / "s1", *FAST],
                           "'mit_b0' is a backbone"),
    "segment another model's weights": (
        lambda d: _segment(d, "--out", d.root / "s2", "--weights", d.cffm_w),
        "weights do not match model segformer_b0"),
    # output paths
    "segment --json is a folder": (lambda d: _segment(d, "--weights", d.seg_w, "--out", fresh(d, "s3"),
                                                      "--json", d.a_dir), "is a folder; expected a file path"),
    "segment --out inside a file": (lambda d: _segment(d, "--weights", d.seg_w, "--out", d.a_file),
                                    "a_file.txt/origin: Not a directory"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_error(case, d, capsys):
    build_argv, fragment = CASES[case]
    code, _, err = run_cli(build_argv(d), capsys)
    assert code != 0, err
    assert "Traceback" not in err, err
    assert fragment in err, err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err


def test_case_count():
    """The count of table cases recorded in docs/errors.md."""
    text = (Path(__file__).parents[1] / "docs" / "errors.md").read_text()
    assert f"{len(CASES)} cases" in text


# ------------------------------------------------------------------------------------------ faults and sequences
def test_disk_full_names_the_file_and_leaves_nothing(d, capsys, monkeypatch):
    out = fresh(d, "enospc")
    real = Path.write_bytes

    def full(self, data):
        if self.name.startswith(".") and ".tmp" in self.name:
            real(self, data[: len(data) // 2])  # half written, then the device is full
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    code, _, err = run_cli(_segment(d, "--weights", d.seg_w, "--out", out), capsys)
    assert code == 2 and "Traceback" not in err
    assert "no space left on device while writing" in err and str(out) in err
    assert [p for p in out.rglob("*") if p.is_file() and p.suffix == ".png"] == []
    assert [p for p in out.rglob("*") if ".tmp" in p.name] == []


def test_checkpoint_disk_full(tmp_path, monkeypatch):
    from vidseg.errors import DiskFullError
    from vidseg.models.checkpoint import save_torch_atomic

    real = Path.write_bytes

    def full(self, data):
        real(self, data[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(DiskFullError, match="no space left on device while writing .*last.pt"):
        save_torch_atomic(tmp_path / "last.pt", {"x": torch.ones(3)})
    assert list(tmp_path.iterdir()) == []


def test_closed_stdout_still_writes_json(d, capsys, monkeypatch):
    import sys

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    out = fresh(d, "pipe")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    code = main([str(a) for a in _segment(d, "--weights", d.seg_w, "--out", out, "--json", out / "run.json")])
    assert code == 0
    assert json.loads((out / "run.json").read_text())["frames"] == 3


def test_outputs_honour_the_umask(d, capsys):
    out = fresh(d, "umask")
    old = os.umask(0o022)
    try:
        assert run_cli(_segment(d, "--weights", d.seg_w, "--out", out, "--json", out / "r.json"), capsys)[0] == 0
    finally:
        os.umask(old)
    pngs = list((out / d.video.name).glob("*.png"))
    assert pngs and all(p.stat().st_mode & 0o777 == 0o644 for p in [*pngs, out / "r.json"])


def test_segment_refuses_a_folder_made_differently(d, capsys):
    out = fresh(d, "resume")
    base = _segment(d, "--weights", d.seg_w, "--out", out)
    assert run_cli(base, capsys)[0] == 0
    code, out_text, _ = run_cli(base, capsys)  # the same run resumes
    assert code == 0 and "3" in out_text
    code, _, err = run_cli([*base, "--tta"], capsys)  # other options
    assert code == 2 and "was written by a different run" in err and "--overwrite" in err and "tta" in err
    torch.manual_seed(5)
    from vidseg.models import build
    from vidseg.models.checkpoint import save_weights

    other = d.root / "other_segformer.safetensors"
    save_weights(build("segformer_b0"), other)
    code, _, err = run_cli(_segment(d, "--weights", other, "--out", out), capsys)  # other weights
    assert code == 2 and "weights" in err and "sha256" in err
    mask = out / d.video.name / "00000001.png"
    before = mask.read_bytes()
    assert run_cli(_segment(d, "--weights", other, "--out", out, "--overwrite"), capsys)[0] == 0
    assert mask.read_bytes() != before  # really re-made with the other weights


def test_partial_weights_flag_loads_what_matches(d, capsys):
    out = fresh(d, "partial")
    with pytest.warns(UserWarning, match="partial weights for segformer_b0"):
        code, _, err = run_cli(_segment(d, "--out", out, "--weights", d.cffm_w, "--partial-weights"), capsys)
    assert code == 0, err


def test_identical_checkpoints_are_byte_identical(tmp_path):
    from vidseg.models.checkpoint import save_torch_atomic

    state = {"w": torch.arange(6.0).reshape(2, 3), "it": 3}
    save_torch_atomic(tmp_path / "a.pt", state)
    save_torch_atomic(tmp_path / "b.pt", state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.load(tmp_path / "a.pt", weights_only=True)["it"] == 3


def test_stale_temporaries_are_removed(tmp_path):
    from vidseg.fileio import remove_stale_temporaries

    old = tmp_path / ".last.abc123.tmp.pt"
    new = tmp_path / ".last.def456.tmp.pt"
    keep = tmp_path / "last.pt"
    for p in (old, new, keep):
        p.write_bytes(b"x")
    os.utime(old, (1, 1))
    assert remove_stale_temporaries(tmp_path) == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([new.name, keep.name])


def _unused(*_):  # keep numpy/Image imports for the data cases below
    return np.zeros(1), Image
