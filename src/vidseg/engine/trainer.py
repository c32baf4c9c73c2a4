"""Iteration-based trainer: DDP through torchrun, bf16 autocast, gradient accumulation, exact resume.

Example (a model implementing :class:`vidseg.models.base.VideoSegmenter` and a map-style dataset of
:class:`vidseg.structures.Clip`)::

    from vidseg.config import load_config
    from vidseg.engine.trainer import Trainer, seed_everything

    cfg = load_config("configs/cffm_b0_vspw.yaml", ["smoke=true"])
    seed_everything(cfg.seed)
    model = build_model(cfg)
    result = Trainer(cfg, model, train_set, out_dir="runs/x").fit(resume=False)

Determinism: with ``deterministic: true`` on CPU, a run interrupted at any step (SIGINT/SIGTERM save a
checkpoint before exiting; a killed run restarts from the last periodic one) and resumed gives weights that are
bit-identical to an uninterrupted run: the data stream is a function of the step index (see
:mod:`vidseg.engine.step_sampler`), and model, optimizer, scheduler and all RNG states are checkpointed.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from vidseg.config import TrainConfig, dump_config, save_config
from vidseg.engine import checkpoint as ckpt
from vidseg.engine.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_flag,
    gather_objects,
    init_distributed,
)
from vidseg.engine.logging import MetricLogger, progress_bar, truncate_metrics
from vidseg.engine.optim import build_optimizer
from vidseg.engine.precision import autocast, resolve_precision
from vidseg.engine.schedule import PolyWarmupSchedule
from vidseg.engine.step_sampler import SeededDataset, StepSampler
from vidseg.errors import ConfigError, DataError
from vidseg.fileio import atomic_path, remove_stale_temporaries
from vidseg.models.checkpoint import load_state_dict
from vidseg.structures import ClipBatch

EvaluateFn = Callable[[nn.Module, torch.device], dict[str, float]]


@runtime_checkable
class StepHook(Protocol):
    """Several optimisers in one step (e.g. a GAN: generator, discriminator, segmenter).

    The trainer builds the optimisers with :meth:`build_optimizers` (the first one gets the learning-rate
    schedule), calls :meth:`begin` before each step, runs the usual forward / ``losses`` / one backward of
    their sum, steps only the optimisers named by :meth:`active`, and gives the step's all-reduced scalars
    (``loss``, ``loss/<term>``) to :meth:`observe`. Optimiser and hook states go into checkpoints.
    Example: :class:`vidseg.engine.stcnn_stages.StcnnStepHook`.
    """

    def build_optimizers(self, model: Any) -> dict[str, torch.optim.Optimizer]: ...

    def begin(self, model: Any, iteration: int, total: int) -> None: ...

    def active(self) -> set[str]: ...

    def observe(self, scalars: dict[str, float]) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels (errors on ops that have none) and fixed cuDNN algorithms."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did.

    Attributes:
        iteration: steps completed.
        interrupted: True when a signal stopped the run (a checkpoint was saved).
        checkpoint: path of the last checkpoint written, if any.
        metrics: last evaluation metrics (empty if none ran).
        history: (iteration, loss) of every logged step.
    """

    iteration: int
    interrupted: bool = False
    checkpoint: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[tuple[int, float]] = field(default_factory=list)


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked after each step (main thread only)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class LossForward(nn.Module):
    """``model`` whose ``forward(frames, labels)`` returns ``model.losses(model(frames), labels)``.

    The trainer wraps this module in DDP, so every parameter the losses use is used inside DDP's forward: Clip-PanoFCN's
    kernel generators run in ``losses`` (the official code computes its losses inside ``forward``), and DDP
    rejects gradients of parameters it saw unused in ``forward`` ("mark a variable ready only once").
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.losses(self.model(frames), labels)


class Trainer:
    """Runs ``cfg.schedule.max_iters`` optimisation steps of ``model`` on ``train_set``.

    Args:
        cfg: the run's configuration (optimizer, schedule, batch, precision, checkpointing).
        model: a module whose ``forward(frames [B, T, 3, H, W])`` in train mode returns what its
            ``losses(outputs, labels [B, T, H, W])`` needs; ``losses`` returns a dict of weighted terms.
        train_set: map-style dataset of :class:`vidseg.structures.Clip` (optionally with ``get(index, rng)``).
        out_dir: run folder (checkpoints, ``metrics.jsonl``, ``tb/``, ``config.yaml``).
        dist_info: process group info; default: :func:`init_distributed` from the environment.
        evaluate_fn: ``(model, device) -> metrics`` run on the main process every ``cfg.eval_every`` steps
            and at the end (other ranks wait).
        step_hook: optimisers and per-step switches for multi-optimiser training (:class:`StepHook`);
            default: one optimiser from ``cfg.optim``.
    """

    def __init__(self, cfg: TrainConfig, model: nn.Module, train_set: Any, *, out_dir: str | os.PathLike,
                 dist_info: DistInfo | None = None, evaluate_fn: EvaluateFn | None = None,
                 step_hook: StepHook | None = None) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.dist = dist_info or init_distributed(cfg.device)
        self.device = self.dist.device
        self.precision = resolve_precision(cfg.precision, self.device)  # "auto" decided for this device
        self.evaluate_fn = evaluate_fn
        self.train_set = train_set
        if cfg.grad_accum < 1:
            raise ConfigError("grad_accum must be >= 1")
        if cfg.data.batch_size % (self.dist.world_size * cfg.grad_accum):
            raise ConfigError(f"data.batch_size {cfg.data.batch_size} is not divisible by processes x grad_accum "
                              f"({self.dist.world_size} x {cfg.grad_accum})")
        self.model = self._prepare_model(model)
        self.step_hook = step_hook
        self.optimizers = (step_hook.build_optimizers(self.model) if step_hook is not None
                           else {"main": build_optimizer(self.model, cfg.optim)})
        self.optimizer = next(iter(self.optimizers.values()))  # the scheduled one
        self.scheduler = PolyWarmupSchedule(self.optimizer, cfg.schedule)
        self.ddp_model = self._wrap(self.model)
        self.iteration = 0
        if self.dist.distributed:  # same weights everywhere (DDP broadcasts them), different dropout per rank
            torch.manual_seed(cfg.seed + 1000003 * self.dist.rank)

    # ---------------------------------------------------------------------------------------------- setup
    def _prepare_model(self, model: nn.Module) -> nn.Module:
        if self.cfg.sync_bn and self.dist.distributed and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = model.to(self.device)
        if self.cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def _wrap(self, model: nn.Module) -> nn.Module:
        if not self.dist.distributed:
            return LossForward(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(LossForward(model), device_ids=ids, find_unused_parameters=True)

    def _loader(self, start: int) -> torch.utils.data.DataLoader:
        sampler = StepSampler(len(self.train_set), self.cfg.data.batch_size, world_size=self.dist.world_size,
                              rank=self.dist.rank, grad_accum=self.cfg.grad_accum, seed=self.cfg.seed,
                              start_step=start, max_steps=self.cfg.schedule.max_iters)
        workers = self.cfg.data.num_workers
        # an explicit generator keeps the DataLoader from drawing its base seed from the global torch RNG
        return torch.utils.data.DataLoader(
            SeededDataset(self.train_set), batch_sampler=sampler, num_workers=workers,
            collate_fn=ClipBatch.collate, pin_memory=self.device.type == "cuda",
            persistent_workers=False, generator=torch.Generator().manual_seed(self.cfg.seed),
            multiprocessing_context="fork" if workers > 0 and os.name == "posix" else None,
        )

    # ---------------------------------------------------------------------------------------------- state
    def _data_position(self) -> dict[str, int]:
        return {"step": self.iteration, "samples": self.iteration * self.cfg.data.batch_size}

    def save(self, path: Path | None = None) -> Path:
        """Write ``last.pt`` (and keep ``iter_<N>.pt`` copies); main process only. Returns the path."""
        path = path or self.out_dir / "last.pt"
        rng_states = gather_objects(ckpt.capture_rng_state())  # every rank's generators, by rank
        if self.dist.is_main:
            ckpt.save_checkpoint(path, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                                 iteration=self.iteration, data_position=self._data_position(),
                                 config_yaml=dump_config(self.cfg), rng_states=rng_states,
                                 extra=self._hook_state())
            self._keep_copy(path)
        barrier()
        return path

    def _hook_state(self) -> dict[str, Any]:
        if self.step_hook is None:
            return {}
        return {"optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
                "step_hook": self.step_hook.state_dict()}

    def _load_hook_state(self, path: str | os.PathLike, extra: dict[str, Any]) -> None:
        if self.step_hook is None:
            return
        if "step_hook" not in extra or set(extra.get("optimizers", {})) != set(self.optimizers):
            raise DataError(path, f"checkpoint lacks the optimisers {sorted(self.optimizers)} of this recipe")
        for name, opt in self.optimizers.items():
            opt.load_state_dict(extra["optimizers"][name])
        self.step_hook.load_state_dict(extra["step_hook"])

    def _keep_copy(self, last: Path) -> None:
        if self.cfg.keep_checkpoints <= 0:
            return
        copy = self.out_dir / f"iter_{self.iteration:07d}.pt"
        with atomic_path(copy) as tmp:  # a real copy, not a hard link: a damaged last.pt leaves this one intact
            shutil.copyfile(last, tmp)
        olds = sorted(self.out_dir.glob("iter_*.pt"), key=lambda q: int(q.stem.split("_")[1]))
        for old in olds[:-self.cfg.keep_checkpoints]:
            old.unlink()

    def load(self, path: str | os.PathLike, payload: dict[str, Any] | None = None) -> None:
        """Restore model, optimizer, scheduler, RNG states and the step from a checkpoint (``payload``: read)."""
        payload = payload if payload is not None else ckpt.load_checkpoint(path)
        self._load_model_state(path, payload)
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self._load_hook_state(path, payload.get("extra", {}))
        self.iteration = int(payload["iteration"])
        states = payload["rng"]
        if len(states) != self.dist.world_size:
            warnings.warn(f"{path}: saved by {len(states)} processes, resumed by {self.dist.world_size}; "
                          "random states are re-used modulo the count (not bit-identical)", stacklevel=2)
        ckpt.restore_rng_state(states[self.dist.rank % len(states)])

    def _load_model_state(self, path: str | os.PathLike, payload: dict[str, Any]) -> None:
        """The checkpoint's model weights, or a one-line error when it belongs to another model or recipe."""
        saved = _saved_model_name(payload.get("config", ""))
        if saved is not None and saved != self.cfg.model.name:
            raise DataError(path, f"checkpoint of model {saved}, but this config trains {self.cfg.model.name}; "
                                  "use another --out or the matching config")
        report = load_state_dict(self.model, payload["model"], source=path)
        if report.missing or report.unexpected:
            raise DataError(path, f"checkpoint does not match this config's model: {report.summary()}; "
                                  "use another --out or the matching config")

    # ---------------------------------------------------------------------------------------------- steps
    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.precision, self.device)

    def _micro_step(self, batch: ClipBatch, sync: bool) -> dict[str, torch.Tensor]:
        batch = batch.to(self.device)
        if batch.labels is None:
            raise ConfigError("training clips have no labels")
        no_sync = getattr(self.ddp_model, "no_sync", None)
        ctx = no_sync() if (no_sync is not None and not sync) else contextlib.nullcontext()
        with ctx:
            with self._autocast():
                terms = self.ddp_model(batch.frames, batch.labels)
            loss = sum(t.float() for t in terms.values())
            (loss / self.cfg.grad_accum).backward()
        return {k: v.detach().float() for k, v in terms.items()}

    def _step(self, data_iter: Any) -> dict[str, float]:
        self.ddp_model.train()
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        if self.step_hook is not None:
            self.step_hook.begin(self.model, self.iteration, self.cfg.schedule.max_iters)
        totals: dict[str, torch.Tensor] = {}
        for m in range(self.cfg.grad_accum):
            terms = self._micro_step(next(data_iter), sync=m == self.cfg.grad_accum - 1)
            for k, v in terms.items():
                totals[k] = totals.get(k, 0) + v / self.cfg.grad_accum
        if self.cfg.optim.grad_clip > 0 and self.cfg.optim.grad_clip_type == "value":
            nn.utils.clip_grad_value_(self.model.parameters(), self.cfg.optim.grad_clip)
        elif self.cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        active = self.step_hook.active() if self.step_hook is not None else set(self.optimizers)
        for name, opt in self.optimizers.items():
            if name in active:
                opt.step()
        self.scheduler.step()
        self.iteration += 1
        stacked = all_reduce_mean(torch.stack(list(totals.values())))
        scalars = {f"loss/{k}": float(v) for k, v in zip(totals, stacked, strict=True)}
        scalars["loss"] = float(stacked.sum())
        if self.step_hook is not None:
            self.step_hook.observe(scalars)
        return scalars

    def _base_lr(self) -> float:
        for g in self.optimizer.param_groups:
            if g.get("lr_mult", 1.0) == 1.0:
                return float(g["lr"])
        return float(self.optimizer.param_groups[0]["lr"])

    def evaluate(self) -> dict[str, float]:
        """Run ``evaluate_fn`` on the main process (others wait); returns its metrics."""
        metrics: dict[str, float] = {}
        if self.evaluate_fn is not None and self.dist.is_main:
            self.model.eval()
            with torch.no_grad(), self._autocast():
                metrics = dict(self.evaluate_fn(self.model, self.device))
            self.model.train()
        barrier()
        return metrics

    # ---------------------------------------------------------------------------------------------- loop
    def _resume(self, resume: bool | str | os.PathLike) -> None:
        if resume is False or resume is None:
            return
        if resume is not True:
            self.load(resume)
            return
        path, payload, skipped = ckpt.load_latest_checkpoint(self.out_dir)
        for line in skipped:
            warnings.warn(f"--resume: {line}; resuming from {path.name}", stacklevel=3)
        self.load(path, payload)

    def _periodic(self, logger: MetricLogger, result: TrainResult) -> None:
        every = self.cfg.checkpoint_every
        if every > 0 and self.iteration % every == 0 and self.iteration < self.cfg.schedule.max_iters:
            result.checkpoint = self.save()
        ev = self.cfg.eval_every
        if ev > 0 and self.iteration % ev == 0 and self.iteration < self.cfg.schedule.max_iters:
            result.metrics = self.evaluate()
            logger.log(self.iteration, {f"eval/{k}": v for k, v in result.metrics.items()})

    def fit(self, resume: bool | str | os.PathLike = False, until: int | None = None) -> TrainResult:
        """Train until ``max_iters`` (or a signal); returns a :class:`TrainResult`.

        Args:
            resume: False (fresh run), True (continue from ``out_dir``'s latest checkpoint) or a path.
            until: stop after this step as if interrupted (checkpoint saved, ``interrupted`` set); the
                schedule still runs to ``max_iters``. Used to split a run into parts.
        """
        self._resume(resume)
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.out_dir, max_age=0.0)  # one run per folder: leftovers are a killed run's
            truncate_metrics(self.out_dir / "metrics.jsonl", self.iteration)

            save_config(self.cfg, self.out_dir / "config.yaml")
        logger = MetricLogger(self.out_dir, enabled=self.dist.is_main)
        result = TrainResult(iteration=self.iteration)
        try:
            self._loop(logger, result, until)
        finally:
            logger.close()
        result.iteration = self.iteration
        return result

    def _loop(self, logger: MetricLogger, result: TrainResult, until: int | None) -> None:
        max_iters = self.cfg.schedule.max_iters
        data_iter = iter(self._loader(self.iteration))
        bar = progress_bar(max_iters, self.iteration, self.dist.is_main,
                           desc=f"train {self.cfg.name} [{self.precision}]")
        with _StopFlag() as stop, bar:
            while self.iteration < max_iters:
                t0 = time.perf_counter()
                scalars = self._step(data_iter)
                if not math.isfinite(scalars["loss"]):
                    raise FloatingPointError(f"loss became {scalars['loss']} at iteration {self.iteration}")
                scalars["lr"] = self._base_lr()
                scalars["time/iter"] = time.perf_counter() - t0
                result.history.append((self.iteration, scalars["loss"]))
                bar.update(1)
                bar.set_postfix(loss=f"{scalars['loss']:.4f}", lr=f"{scalars['lr']:.2e}", refresh=False)
                if self.iteration % max(self.cfg.log_every, 1) == 0 or self.iteration == max_iters:
                    logger.log(self.iteration, scalars)
                stop_now = stop.signal is not None or (until is not None and self.iteration >= until)
                if broadcast_flag(stop_now, self.device) and self.iteration < max_iters:
                    result.checkpoint = self.save()
                    result.interrupted = True
                    return
                self._periodic(logger, result)
        result.checkpoint = self.save()
        if self.cfg.eval_every >= 0:
            result.metrics = self.evaluate()
            logger.log(self.iteration, {f"eval/{k}": v for k, v in result.metrics.items()})


def _saved_model_name(config_yaml: str) -> str | None:
    """The ``model.name`` of the config text stored in a checkpoint (None when it cannot be read)."""
    import yaml

    try:
        data = yaml.safe_load(config_yaml) or {}
    except yaml.YAMLError:
        return None
    model = data.get("model") if isinstance(data, dict) else None
    name = model.get("name") if isinstance(model, dict) else None
    return name if isinstance(name, str) else None
