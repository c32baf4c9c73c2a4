"""``vidseg annotate propagate --flow raft-small --flow-weights W`` and a RAFT backend object drive the command
(both slow on CPU: about 30 s on the shared machine): zero-flow RAFT carries each key frame unchanged, so the
nearer key frame's labels come out exactly and the spots are exactly where the two key frames disagree; the
weights enter provenance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vidseg.annotate.propagate_folder import propagate_folder
from vidseg.cli.main import main
from vidseg.fileio import read_image, write_mask_png
from vidseg.flow import RAFTFlow, build_raft

from .raft_reference import random_raft_state


def _zero_raft(tmp_path: Path) -> Path:
    shapes = {k: tuple(v.shape) for k, v in build_raft("small").state_dict().items()}
    state = random_raft_state(shapes, seed=4321)
    for key in ("update_block.flow_head.conv2.weight", "update_block.flow_head.conv2.bias"):
        state[key] = state[key] * 0.0  # a zero flow head: RAFT returns exactly zero flow
    weights = tmp_path / "raft-small.pth"
    torch.save({"module." + k: v for k, v in state.items()}, weights)
    return weights


def _video(tmp_path: Path) -> dict[int, np.ndarray]:
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "frames").mkdir()
    (tmp_path / "keys").mkdir()
    for t in range(3):
        Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(tmp_path / "frames" / f"{t:03d}.png")
    keys = {0: rng.integers(0, 125, (128, 128)).astype(np.uint8), 2: rng.integers(0, 125, (128, 128)).astype(np.uint8)}
    for k, labels in keys.items():
        write_mask_png(tmp_path / "keys" / f"{k:03d}.png", labels)
    return keys


def _check(out: Path, keys: dict[int, np.ndarray]) -> dict:
    for t in range(3):
        np.testing.assert_array_equal(read_image(out / "mask" / f"{t:03d}.png"), keys[0 if t <= 1 else 2])
        spots = read_image(out / "spots" / f"{t:03d}.png") == 255
        expected = (keys[0] != keys[2]) if t == 1 else np.zeros_like(spots)  # both directions confident
        np.testing.assert_array_equal(spots, expected)
    return json.loads((out / "propagation.json").read_text())


@pytest.mark.slow
def test_propagate_folder_with_a_raft_backend(tmp_path: Path) -> None:
    keys = _video(tmp_path)
    flow = RAFTFlow(_zero_raft(tmp_path), iters=1)
    propagate_folder(tmp_path / "frames", tmp_path / "keys", tmp_path / "out", flow=flow)
    record = _check(tmp_path / "out", keys)
    assert record["frames"]["001"]["source"]["flow"] == "object:vidseg.flow.raft_backend.RAFTFlow"


@pytest.mark.slow
def test_annotate_propagate_cli_with_raft(tmp_path: Path) -> None:
    keys = _video(tmp_path)
    argv = ["annotate", "propagate", str(tmp_path / "frames"), "--keyframes", str(tmp_path / "keys"), "--out",
            str(tmp_path / "out"), "--flow", "raft-small", "--flow-weights", str(_zero_raft(tmp_path)), "--quiet"]
    assert main(argv) == 0
    record = _check(tmp_path / "out", keys)
    assert record["frames"]["001"]["source"]["flow"].startswith("raft-small:")  # + the weights' SHA-256
