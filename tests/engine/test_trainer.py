"""Trainer: exact resume, signal handling, gradient accumulation, torchrun DDP equivalence (toy model)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _toy import ToyClips, ToyVideoModel, toy_config, train_toy  # noqa: E402

from vidseg.engine.checkpoint import load_checkpoint  # noqa: E402
from vidseg.engine.trainer import Trainer, seed_everything  # noqa: E402

TOY = str(Path(__file__).parent / "_toy.py")
ROOT = Path(__file__).resolve().parents[2]


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_is_bit_identical(tmp_path: Path) -> None:
    _, straight = train_toy(tmp_path / "straight", 6)
    # first half: a run configured for 6 iterations that stops after 3 (as if interrupted)
    cfg = toy_config(6)
    seed_everything(cfg.seed)
    res = Trainer(cfg, ToyVideoModel(), ToyClips(), out_dir=tmp_path / "split").fit(until=3)
    assert res.interrupted and res.iteration == 3
    assert load_checkpoint(tmp_path / "split" / "last.pt")["iteration"] == 3
    res, resumed = train_toy(tmp_path / "split", 6, resume=True)
    assert res.iteration == 6
    _assert_same_weights(straight.state_dict(), resumed.state_dict())
    # and the weights did change during the second half
    half = load_checkpoint(tmp_path / "split" / "iter_0000004.pt")["model"]
    assert not all(torch.equal(half[k], v) for k, v in resumed.state_dict().items())


def test_resume_from_periodic_checkpoint_after_kill(tmp_path: Path) -> None:
    """A killed run restarts from its last periodic checkpoint (iter 4) and still ends bit-identical."""
    _, straight = train_toy(tmp_path / "straight", 6)
    run = tmp_path / "killed"
    train_toy(run, 6)
    (run / "last.pt").unlink()  # pretend the process died after iter_0000004.pt was written
    (run / "iter_0000006.pt").unlink()
    res, resumed = train_toy(run, 6, resume=True)
    assert res.iteration == 6
    _assert_same_weights(straight.state_dict(), resumed.state_dict())


def test_grad_accumulation_matches_full_batch(tmp_path: Path) -> None:
    _, full = train_toy(tmp_path / "full", 3, **{"optim.param_groups": "none"})
    _, accum = train_toy(tmp_path / "accum", 3, grad_accum=2, **{"optim.param_groups": "none"})
    for k, v in full.state_dict().items():
        assert torch.allclose(v, accum.state_dict()[k], atol=1e-5), k


def test_checkpoint_keeps_only_recent_copies(tmp_path: Path) -> None:
    train_toy(tmp_path, 8, keep_checkpoints=2)
    assert sorted(p.name for p in tmp_path.glob("iter_*.pt")) == ["iter_0000006.pt", "iter_0000008.pt"]
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck["iteration"] == 8 and ck["data_position"] == {"step": 8, "samples": 32}
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 8


def test_sigterm_saves_then_resume_is_exact(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    iters = 400
    proc = subprocess.Popen([sys.executable, TOY, str(tmp_path / "sig"), str(iters), "checkpoint_every=0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "sig" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not metrics.exists() or metrics.read_text().count("\n") < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    stopped = load_checkpoint(tmp_path / "sig" / "last.pt")["iteration"]
    assert 3 <= stopped < iters, out
    # resume in-process for 3 more steps; compare with an uninterrupted run stopped at the same step
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocess: float reductions depend on the thread count
    try:
        _continue_and_compare(tmp_path, iters, stopped)
    finally:
        torch.set_num_threads(threads)


def _continue_and_compare(tmp_path: Path, iters: int, stopped: int) -> None:
    cfg = toy_config(iters, checkpoint_every=0)
    seed_everything(cfg.seed)
    ref = Trainer(cfg, ToyVideoModel(), ToyClips(), out_dir=tmp_path / "ref")
    ref.fit(until=stopped + 3)
    cfg2 = toy_config(iters, checkpoint_every=0)
    seed_everything(cfg2.seed)
    resumed = Trainer(cfg2, ToyVideoModel(), ToyClips(), out_dir=tmp_path / "sig")
    assert resumed.fit(resume=True, until=stopped + 3).iteration == stopped + 3
    _assert_same_weights(ref.model.state_dict(), resumed.model.state_dict())


def _torchrun(nproc: int, out: Path, iters: int, batch: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           TOY, str(out), str(iters), f"data.batch_size={batch}", "dropout=0"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return torch.load(out / "final_weights.pt", weights_only=True)


def _forked_rank(rank: int, out: str, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from vidseg.engine.distributed import shutdown_distributed

    try:
        _, model = train_toy(out, 3, dropout=0.0, checkpoint_every=0)
        if rank == 0:
            torch.save(model.state_dict(), f"{out}/final_weights.pt")
    finally:
        shutdown_distributed()


def test_two_forked_processes_equal_one_process(tmp_path: Path) -> None:
    """Fast variant: 2 gloo processes forked from the test (no interpreter start-up), same global batch."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_forked_rank, args=(str(tmp_path / "two"), port), nprocs=2, start_method="fork")
    two = torch.load(tmp_path / "two" / "final_weights.pt", weights_only=True)
    _, one = train_toy(tmp_path / "one", 3, dropout=0.0, checkpoint_every=0)
    for k, v in one.state_dict().items():
        assert torch.allclose(v, two[k], atol=1e-5, rtol=1e-4), k


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(tmp_path: Path) -> None:
    """``torchrun --nproc_per_node 2`` (real launcher, gloo) against ``--nproc_per_node 1``."""
    one = _torchrun(1, tmp_path / "one", 3, 4)
    two = _torchrun(2, tmp_path / "two", 3, 4)
    for k, v in one.items():
        assert torch.allclose(v, two[k], atol=1e-5, rtol=1e-4), k
    assert any(not torch.equal(v, ToyVideoModel().state_dict()[k]) for k, v in one.items())


@pytest.mark.parametrize("precision", ["bf16"])
def test_bf16_autocast_trains(tmp_path: Path, precision: str) -> None:
    res, _ = train_toy(tmp_path, 4, precision=precision)
    assert res.iteration == 4 and all(torch.isfinite(torch.tensor(loss)) for _, loss in res.history)
