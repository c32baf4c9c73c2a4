"""The README's two commands and .ci/run agree; the CLI front door behaves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vidseg.cli.main import COMMANDS, main
from vidseg.structures import decode_panoptic, encode_panoptic, id2rgb, rgb2id

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one() -> None:
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert "vidseg demo" in cmds[0] and "-c constraints.txt" in cmds[0]
    assert "pytest" in cmds[1] and "-c constraints.txt" in cmds[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert cmds[1] in ci.splitlines()


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "<command>" in out


@pytest.mark.parametrize("command", [*sorted(set(COMMANDS) - {"eval", "convert", "annotate"}), "eval vspw", "eval vipseg",
                                     "eval davis", "eval youtube-objects", "convert vspw-480p", "convert vipseg-720p",
                                     "annotate associate", "annotate propagate"])
def test_every_command_has_help(command: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "vidseg", *command.split(), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"usage: vidseg {command}" in proc.stdout
    # every option explains itself
    options = re.findall(r"^  (--[a-z-]+)", proc.stdout, flags=re.M)
    assert options, proc.stdout
    for opt in options:
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(f"  {opt}"))
        idx = proc.stdout.splitlines().index(line)
        following = proc.stdout.splitlines()[idx:idx + 2]
        assert any(len(ln.split("  ")) > 1 and ln.strip() != opt for ln in following), f"{command} {opt} has no help"


def test_bad_input_is_one_line_error_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "vidseg", "info", str(tmp_path / "missing")],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "missing" in lines[0]


def test_rgb_id_round_trip() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1 << 24, size=(7, 9))
    rgb = id2rgb(ids)
    assert rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb2id(rgb), ids)
    assert rgb2id(np.array([[[1, 2, 3]]], dtype=np.uint8))[0, 0] == 1 + 2 * 256 + 3 * 65536


def test_panoptic_encode_decode_round_trip_and_void() -> None:
    cat = np.array([[0, 5, 255], [123, 0, 2]])
    inst = np.array([[0, 3, 7], [1, 0, 0]])
    ids = encode_panoptic(cat, inst)
    assert ids.dtype == np.int32
    assert ids[0, 2] == 0 and ids[0, 0] != 0  # wall stuff is not void
    c2, i2 = decode_panoptic(ids)
    np.testing.assert_array_equal(c2, cat)
    np.testing.assert_array_equal(i2, np.where(cat == 255, 0, inst))
