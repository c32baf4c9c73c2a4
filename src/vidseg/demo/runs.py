"""The end-to-end demo: synthetic VSPW data -> train an image baseline and temporal models -> evaluate -> report.

The training part of the ``vidseg demo`` package (data: :mod:`vidseg.demo.data`, report: :mod:`vidseg.demo.report`).

``run_demo(out)`` writes ``out/summary.json`` (``{"models": {name: {"mIoU", "WIoU", "mVC8", "mVC16", "TC"}}}``,
metrics as fractions in [0, 1] like the evaluation JSONs), ``out/report.html`` (tables, training curves, per-video consistency, side-by-side overlay
video of ground truth, baseline and temporal models) and prints the table (in percent).

What is trained (CPU, from scratch: nothing downloads, so there are no ImageNet weights):

* ``segformer_b0`` -- the image baseline (MiT-B0 + MLP head, MLP width reduced to 64);
* ``cffm_b0`` -- CFFM with MiT-B0 (1 CFM block, width reduced to 64), clips [t-9, t-6, t-3, t], started from
  the trained baseline's MiT and MLP-head weights (the role ImageNet/SegFormer weights play in the paper), then
  trained for the same number of steps;
* ``tcb_ppm_b0`` (``tcb=True``, the default) -- TCB-PPM (uniform temporal blend of the pyramid-pooled last
  stage, deep supervision on the 3rd stage of every frame) built on the MiT-B0 encoder instead of ResNet-101
  (PPM width 64, deep-supervision width 32), clips [t, t+3, t+6, t+9] (the TCB sampler), its MiT started from
  the trained baseline's MiT exactly like CFFM's, then trained for the same number of steps.

All share the data, the number of steps, the batch size and the optimizer (AdamW with a learning rate suited to
training from scratch). The synthetic videos contain degraded frames (blur, noise, lighting) that are ambiguous
on their own, so a model that looks at other frames can keep its labels stable where an image model flickers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidseg.config import TrainConfig
from vidseg.data.synth import generate
from vidseg.data.vspw import VSPWDataset
from vidseg.demo.data import DemoSize
from vidseg.demo.panoptic import run_panoptic_part
from vidseg.demo.report import METRICS, percent, write_demo_report
from vidseg.demo.vos import run_vos_part
from vidseg.engine.build import build_model, build_train_dataset, eval_settings, evaluate_videos
from vidseg.engine.trainer import Trainer, seed_everything
from vidseg.errors import ConfigError
from vidseg.metrics.vspw import VSPWEvaluator
from vidseg.models.checkpoint import load_state_dict
from vidseg.tables import format_table, write_json
from vidseg.viz.report import write_report


@dataclass
class DemoModel:
    """One model of the demo: registry name, builder overrides and a display label."""

    label: str
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    crop: int | None = None
    init_from: str | None = None  # label of an earlier demo model whose matching weights start this one
    init_rename: dict[str, str] = field(default_factory=dict)  # source key prefix -> this model's prefix
    iter_scale: float = 1.0  # fraction of DemoSize.iters this model trains (fine-tuned models need fewer)
    precision: str = "fp32"  # training precision (TrainConfig.precision); fp32 keeps the demo's numbers portable

    def iters(self, size: DemoSize) -> int:
        """Training iterations of this model."""
        return max(1, round(size.iters * self.iter_scale))


DEFAULT_MODELS = (
    DemoModel("segformer_b0 (baseline)", "segformer_b0", {"embed_dim": 64, "drop_path_rate": 0.0}),
    DemoModel("cffm_b0", "cffm_b0", {"embed_dim": 64, "drop_path_rate": 0.0}, init_from="segformer_b0 (baseline)",
              iter_scale=2 / 3),
)
TCB_MODEL = DemoModel("tcb_ppm_b0", "tcb_ppm_b0", {"channels": 64, "aux_channels": 32, "drop_path_rate": 0.0},
                      init_from="segformer_b0 (baseline)", init_rename={"backbone.": "encoder."}, iter_scale=2 / 3)


def demo_config(model: DemoModel, root: Path, size: DemoSize, seed: int) -> TrainConfig:
    """The training config of one demo model (flat, like the recipes)."""
    cfg = TrainConfig(name=model.name, seed=seed, device="cpu", precision=model.precision, checkpoint_every=0,
                      keep_checkpoints=0, eval_every=-1, log_every=5)
    cfg.model.name, cfg.model.num_classes, cfg.model.kwargs = model.name, 124, dict(model.kwargs)
    d = cfg.data
    d.dataset, d.root, d.num_workers, d.batch_size = "vspw", str(root), 0, size.batch
    d.crop_size = model.crop or min(size.height, size.width)
    d.base_size, d.scale_range = (size.width, size.height), (0.75, 1.5)
    cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.param_groups = "adamw", size.lr, 0.01, "cffm"
    cfg.optim.head_lr_mult = 1.0
    iters = model.iters(size)
    cfg.schedule.max_iters, cfg.schedule.warmup_iters, cfg.schedule.power = iters, max(iters // 20, 1), 1.0
    return cfg


def _rename(key: str, rename: dict[str, str]) -> str:
    for old, new in rename.items():
        if key.startswith(old):
            return new + key[len(old):]
    return key


def _init_from(net: Any, source: dict[str, Any] | None, rename: dict[str, str] | None = None) -> int:
    """Copy the weights ``net`` shares (same name and shape) with an earlier demo model; returns how many.

    CFFM is MiT + the SegFormer MLP head + the cross-frame block, so starting it from the trained image baseline
    plays the role that ImageNet/SegFormer initialisation plays in the paper; the CFM block starts fresh.
    TCB on MiT gets the baseline's MiT the same way (``rename`` maps ``backbone.`` to ``encoder.``); its
    PPM and deep-supervision heads start fresh.
    """
    if source is None:
        return 0
    own = net.state_dict()
    renamed = {_rename(k, rename or {}): v for k, v in source["state"].items()}
    shared = {k: v for k, v in renamed.items() if k in own and own[k].shape == v.shape}
    return load_state_dict(net, shared).loaded


def _train_and_eval(model: DemoModel, root: Path, out: Path, size: DemoSize, seed: int,
                    source: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    cfg = demo_config(model, root, size, seed)
    run_dir = out / "runs" / model.name
    seed_everything(seed)
    net = build_model(cfg)
    initialised = _init_from(net, source, model.init_rename)
    t0 = time.perf_counter()
    Trainer(cfg, net, build_train_dataset(cfg, net, run_dir), out_dir=run_dir).fit()
    train_s = time.perf_counter() - t0
    videos = list(VSPWDataset(root, "val").videos)
    t0 = time.perf_counter()
    with torch.no_grad():
        metrics, preds = evaluate_videos(net, videos, "cpu", name=cfg.model.name, settings=eval_settings(cfg),
                                         tc=True, keep_predictions=True,
                                         desc=f"evaluate {model.name}" if progress else None)
    return {"metrics": metrics, "predictions": preds, "train_seconds": train_s, "run_dir": run_dir,
            "eval_seconds": time.perf_counter() - t0,
            "per_video_vc8": _per_video_vc(videos, preds, 8), "initialised_tensors": initialised,
            "state": {k: v.detach().clone() for k, v in net.state_dict().items()}}


def _per_video_vc(videos: Sequence[Any], preds: dict[str, list[np.ndarray]], n: int) -> dict[str, float]:
    out = {}
    for video in videos:
        ev = VSPWEvaluator(vc_lengths=(n,))
        for i, pred in enumerate(preds[video.name]):
            ev.process(video.load_raw_mask(i), pred, video=video.name)
        out[video.name] = 100 * float(ev.evaluate()[f"mVC{n}"])
    return out


PARTS = ("semantic", "panoptic", "vos")


def run_demo(out: str | os.PathLike = "demo_out", *, size: DemoSize | None = None, tcb: bool = True,
             models: Sequence[DemoModel] | None = None, seed: int = 0, progress: bool = True,
             parts: Sequence[str] = PARTS) -> dict[str, Any]:
    """Run the demo into ``out``; returns the summary dictionary (also written to ``out/summary.json``).

    Args:
        out: output folder.
        size: data/training sizes of the semantic part (default :class:`DemoSize`).
        tcb: also train the small TCB-PPM on MiT-B0 (on by default).
        models: override the semantic model list (first = baseline).
        seed: data and training seed.
        progress: show progress bars.
        parts: which parts to run: ``semantic`` (VSPW: SegFormer, CFFM, TCB), ``panoptic`` (VIPSeg:
            :mod:`vidseg.demo.panoptic`), ``vos`` (DAVIS: :mod:`vidseg.demo.vos`); their summaries go under
            ``models`` (semantic) and ``panoptic`` / ``vos``.
    """
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise ConfigError(f"demo parts must be some of {', '.join(PARTS)}, got {', '.join(parts) or 'none'}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary: dict[str, Any] = {"parts": [p for p in PARTS if p in parts]}
    sections: list[Any] = []
    for part, runner in (("panoptic", run_panoptic_part), ("vos", run_vos_part)):
        if part in parts:
            summary[part], part_sections = runner(out, seed=seed, progress=progress)
            sections.extend(part_sections)
    semantic = None
    if "semantic" in parts:
        semantic = _run_semantic(out, size or DemoSize(), tcb, models, seed, progress)
        summary.update(semantic["summary"])
    summary["seconds"] = round(time.perf_counter() - start, 1)
    write_json(out / "summary.json", summary)
    if semantic is not None:
        write_demo_report(out, semantic["root"], semantic["results"], summary, semantic["chosen"],
                          extra_sections=sections, progress=progress)
        print(format_summary(summary))
    else:
        write_report(out / "report.html", sections, title="vidseg demo")
    return summary


def _run_semantic(out: Path, size: DemoSize, tcb: bool, models: Sequence[DemoModel] | None, seed: int,
                  progress: bool) -> dict[str, Any]:
    """The semantic part: synthetic VSPW, the demo models trained and evaluated; summary entries and results."""
    root = out / "synthetic_vspw"
    generate("vspw", root, videos=size.videos, frames=size.frames, size=(size.height, size.width), seed=seed,
             val_fraction=0.34, overwrite=True, progress=progress)
    chosen = list(models) if models is not None else [*DEFAULT_MODELS, *([TCB_MODEL] if tcb else [])]
    results: dict[str, dict[str, Any]] = {}
    threads = torch.get_num_threads()
    for model in chosen:
        if model.init_from is not None and model.init_from not in results:
            raise ValueError(f"demo model {model.label!r} starts from {model.init_from!r}, which is not trained before it")
        source = results.get(model.init_from) if model.init_from else None
        results[model.label] = _train_and_eval(model, root, out, size, seed, source, progress)
    torch.set_num_threads(threads)
    summary = {
        "models": {label: {k: round(float(r["metrics"][k]), 4) for k in METRICS} for label, r in results.items()},
        "train_seconds": {label: round(r["train_seconds"], 1) for label, r in results.items()},
        "setup": {"videos": size.videos, "frames": size.frames, "size_hw": [size.height, size.width],
                  "iters": size.iters, "batch": size.batch, "lr": size.lr, "seed": seed,
                  "models": {m.label: {"registry": m.name, **m.kwargs, "init_from": m.init_from, "iters": m.iters(size),
                                       "initialised_tensors": results[m.label]["initialised_tensors"]}
                             for m in chosen}},
    }
    return {"summary": summary, "root": root, "results": results, "chosen": chosen}


def format_summary(summary: dict[str, Any]) -> str:
    """The metrics table (percent; ``summary`` holds fractions)."""
    rows = [[label, *percent(m)] for label, m in summary["models"].items()]
    return format_table(rows, ["model", *METRICS])


def main() -> None:  # pragma: no cover - convenience for `python -m vidseg.demo.runs`
    print(json.dumps(run_demo(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
