"""Resumable training checkpoints, written atomically and read with ``weights_only=True``.

A checkpoint holds everything needed to continue a run bit-identically on CPU::

    {"format": "vidseg-train-v1", "iteration": int, "data_position": {...}, "config": yaml text,
     "model": state_dict, "optimizer": state_dict, "scheduler": state_dict,
     "rng": [{"python": ..., "numpy": ..., "torch": ByteTensor, "cuda": [ByteTensor, ...]}, ...]}  # per rank

Only plain containers, numbers, strings and tensors are stored (the numpy RNG key becomes a tensor), so the file
loads with ``torch.load(weights_only=True)`` and can never run code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidseg.errors import DataError
from vidseg.models.checkpoint import save_torch_atomic

FORMAT = "vidseg-train-v1"


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU + CUDA) RNG states as weights-only-loadable values."""
    py = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, iteration: int, data_position: dict[str, int], config_yaml: str,
                    rng_states: list[dict[str, Any]] | None = None, extra: dict[str, Any] | None = None) -> None:
    """Write a resumable checkpoint atomically (a crash mid-write leaves the previous file intact).

    ``rng_states`` holds one :func:`capture_rng_state` per rank (default: this process's only).
    """
    payload = {
        "format": FORMAT,
        "iteration": int(iteration),
        "data_position": dict(data_position),
        "config": config_yaml,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_states if rng_states is not None else [capture_rng_state()],
        "extra": extra or {},
    }
    save_torch_atomic(path, payload)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``, on CPU).

    Raises:
        DataError: missing, unreadable, or not a vidseg training checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(p, "checkpoint not found")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(p, f"unreadable checkpoint ({first})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(p, f"not a vidseg training checkpoint (expected format {FORMAT!r})")
    return payload


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """``folder/last.pt`` if present, else the newest ``iter_*.pt``, else None."""
    found = checkpoint_candidates(folder)
    return found[0] if found else None


def checkpoint_candidates(folder: str | os.PathLike) -> list[Path]:
    """The checkpoints of a run folder, the one to resume from first: ``last.pt``, then ``iter_*.pt`` newest first."""
    folder = Path(folder)
    iters = sorted(folder.glob("iter_*.pt"), key=_iteration_of, reverse=True)
    last = folder / "last.pt"
    return ([last] if last.is_file() else []) + [p for p in iters if p.is_file()]


def _iteration_of(path: Path) -> int:
    tail = path.stem.split("_", 1)[1]
    return int(tail) if tail.isdigit() else -1


def load_latest_checkpoint(folder: str | os.PathLike) -> tuple[Path, dict[str, Any], list[str]]:
    """Load the newest checkpoint of ``folder`` that reads; a truncated or corrupt one falls back to the next.

    Returns:
        (path, payload, skipped): ``skipped`` has one line per checkpoint passed over, saying why.

    Raises:
        DataError: no checkpoint in ``folder``, or none of them loads (every reason listed).
    """
    skipped: list[str] = []
    candidates = checkpoint_candidates(folder)
    if not candidates:
        raise DataError(folder, "--resume: no checkpoint (last.pt or iter_*.pt) in this run folder")
    for path in candidates:
        try:
            return path, load_checkpoint(path), skipped
        except DataError as exc:
            skipped.append(f"skipped {path.name}: {exc.problem}")
    raise DataError(folder, "--resume: no checkpoint loads (" + "; ".join(skipped) + ")")
