"""Issue 16: the official loss reductions under DDP (2 gloo processes) equal one process on the same global batch.

* CFFM (mmseg 0.x, mean over all pixels): per-process means over equal pixel counts average to the global mean.
* TCB (VSPW code, NLL mean over labelled pixels per DataParallel chunk of 2 clips): each process averages its
  chunks and DDP averages the processes, so the loss is the official mean over all chunks.
* ``valid`` (mean over each process's labelled pixels) does NOT have this property when the labelled fraction
  differs between the processes' halves: the last case checks the test can tell the rules apart.

The models are real (CFFM-B0, TCB-PPM on MiT-B0) with BatchNorm and dropout in eval mode and no stochastic depth,
so that the per-sample computation does not depend on the batch split (the official runs use SyncBN).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from vidseg.models.video.cffm import build_cffm
from vidseg.models.video.tcb import build_tcb

T, K = 4, 3
SHAPES = {"cffm": (2, 48), "tcb": (4, 32)}  # (global clips, crop): 1 clip / 2 clips (one chunk) per process


def _model(family: str, reduction: str) -> nn.Module:
    torch.manual_seed(0)
    if family == "cffm":
        model = build_cffm(variant="b0", num_classes=K, drop_path_rate=0.0, loss_reduction=reduction)
    else:
        model = build_tcb(blend="ppm", encoder="mit_b0", channels=8, aux_channels=8, num_classes=K,
                          drop_path_rate=0.0, loss_reduction=reduction)
    model.double().train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d | nn.Dropout | nn.Dropout2d):
            m.eval()
    return model


def _batch(family: str) -> tuple[torch.Tensor, torch.Tensor]:
    b, size = SHAPES[family]
    g = torch.Generator().manual_seed(16)
    frames = torch.randn(b, T, 3, size, size, generator=g, dtype=torch.float64)
    labels = torch.randint(0, K, (b, T, size, size), generator=g)
    labels[: b // 2, :, : size * 3 // 4] = 255  # process 0's half is mostly ignored, process 1's is not
    labels[-1, -1, :, :10] = 255
    return frames, labels


def _grads(model: nn.Module, frames: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    loss = sum(model.losses(model(frames), labels).values())
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _rank(rank: int, family: str, reduction: str, out: str, port: int) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model = _model(family, reduction)
        ddp = DDP(model)
        frames, labels = _batch(family)
        half = slice(rank * len(frames) // 2, (rank + 1) * len(frames) // 2)
        loss = sum(model.losses(ddp(frames[half]), labels[half]).values())
        loss.backward()
        if rank == 0:
            torch.save({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, out)
    finally:
        dist.destroy_process_group()


def _two_process_grads(tmp_path: Path, family: str, reduction: str) -> dict[str, torch.Tensor]:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(tmp_path / f"{family}_{reduction}.pt")
    mp.start_processes(_rank, args=(family, reduction, out, port), nprocs=2, start_method="fork")
    return torch.load(out, weights_only=True)


def _max_rel_diff(a: dict, b: dict) -> float:
    """Largest gradient difference relative to the largest gradient (some MiT q/k gradients are ~1e-21)."""
    assert a.keys() == b.keys()
    scale = max(float(v.abs().max()) for v in b.values())
    return max(float((a[k] - b[k]).abs().max()) for k in b) / scale


@pytest.mark.parametrize("family", [pytest.param("cffm", marks=pytest.mark.slow), "tcb"])
def test_official_loss_two_processes_equal_one_process(tmp_path: Path, family: str) -> None:
    one = _grads(_model(family, "official"), *_batch(family))
    two = _two_process_grads(tmp_path, family, "official")
    assert _max_rel_diff(two, one) < 1e-9


@pytest.mark.slow
def test_valid_mean_depends_on_the_split(tmp_path: Path) -> None:
    """The per-process valid-pixel mean reweights the halves: the rule the official CFFM code does not have."""
    one = _grads(_model("cffm", "valid"), *_batch("cffm"))
    two = _two_process_grads(tmp_path, "cffm", "valid")
    assert _max_rel_diff(two, one) > 1e-2
