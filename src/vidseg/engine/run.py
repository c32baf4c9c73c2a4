"""``train(cfg, out_dir)``: the whole training run from a config (used by ``vidseg train`` and the demo)."""

from __future__ import annotations

import os
from pathlib import Path

from vidseg.config import TrainConfig
from vidseg.engine import build
from vidseg.engine.distributed import barrier, init_distributed
from vidseg.engine.stcnn_build import is_stcnn, train_stcnn
from vidseg.engine.trainer import Trainer, TrainResult, seed_everything, set_deterministic
from vidseg.models.checkpoint import save_weights


def default_out_dir(cfg: TrainConfig) -> Path:
    """``runs/<name>`` (``runs/<name>_smoke`` for smoke runs)."""
    return Path("runs") / (cfg.name + ("_smoke" if cfg.smoke else ""))


def train(cfg: TrainConfig, out_dir: str | os.PathLike | None = None, *, resume: bool | str = False,
          evaluate: bool = True) -> TrainResult:
    """Build model and data from ``cfg`` and train (under torchrun: this process's share).

    Args:
        cfg: the configuration; ``cfg.smoke`` shrinks it first (:func:`vidseg.engine.build.apply_smoke`).
        out_dir: run folder (default ``runs/<name>``).
        resume: continue from the latest checkpoint in ``out_dir`` (True) or from a given file.
        evaluate: evaluate on the validation split (``eval_every`` and at the end).
    """
    if is_stcnn(cfg):  # STCNN stages: several optimisers, stage modules (vidseg.engine.stcnn_build)
        out = Path(out_dir) if out_dir is not None else default_out_dir(cfg)
        return train_stcnn(cfg, out, resume=resume)
    if cfg.smoke:
        cfg = build.apply_smoke(cfg)
    out = Path(out_dir) if out_dir is not None else default_out_dir(cfg)
    if cfg.data.dataset != "synthetic":
        build.data_root(cfg, out)  # a missing root is reported before anything heavy happens
    info = init_distributed(cfg.device)
    set_deterministic(cfg.deterministic)
    if info.is_main and cfg.data.dataset == "synthetic":
        build.data_root(cfg, out)  # generate once, before the other ranks read it

    barrier()
    seed_everything(cfg.seed)
    model = build.build_model(cfg)
    train_set = build.build_train_dataset(cfg, model, out)
    evaluate_fn = build.make_evaluate_fn(cfg, out) if evaluate and cfg.eval_every >= 0 else None
    trainer = Trainer(cfg, model, train_set, out_dir=out, dist_info=info, evaluate_fn=evaluate_fn)
    result = trainer.fit(resume=resume)
    if info.is_main and not result.interrupted:
        save_weights(trainer.model, out / "model_final.pt")
    return result
