"""``vidseg predict``: a whole split in, the official submission out (and scored), on one or many processes.

Under ``torchrun --nproc_per_node N -m vidseg predict ...`` every rank loads the model, takes its share of the
videos (balanced by frame count, :func:`vidseg.inference.predict.balance`) and writes them; rank 0 checks the
output folder's provenance first (everyone waits), merges when every rank is done and scores. The written files do not
depend on N.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidseg.engine.distributed import (
    DistInfo,
    gather_objects,
    init_distributed,
    shutdown_distributed,
)
from vidseg.errors import ConfigError, DataError, VidsegError
from vidseg.inference.backend import make_backend
from vidseg.inference.predict import (
    TASK_OF,
    balance,
    list_videos,
    marker_path,
    merge_outputs,
    output_patterns,
    predict_share,
)
from vidseg.inference.predict_report import per_video_scores, score_folder, write_predict_report
from vidseg.inference.runtime import prepare_for_inference
from vidseg.inference.settings import InferenceSettings
from vidseg.models import get_entry, load_model, make_predictor
from vidseg.provenance import make_record, prepare_output_folder
from vidseg.tables import write_json

RANDOM_WEIGHTS_SEED = 0


@dataclass
class PredictRequest:
    """What to predict and how.

    Attributes:
        benchmark: ``vspw``, ``vipseg`` or ``davis``.
        root: dataset root.
        split: split name (``val``).
        model: registered model name.
        weights: local weights, or None (random weights).
        out: output folder.
        settings: semantic models' test settings (official ones with the user's overrides); None otherwise.
        tta: semantic models: multi-scale + flip test.
        evaluate: score the folder and write ``metrics.json`` + ``report.html``.
        device: ``cpu`` or ``cuda`` (one GPU per rank: ``LOCAL_RANK``).
        davis_year: DAVIS image-set year (``2017`` multi-object, ``2016``).
        strict_weights: refuse partial checkpoints.
        overwrite: replace a folder made by another run.
        progress: progress bars.
        backend: semantic models: ``torch`` or ``onnxruntime`` (:func:`vidseg.inference.backend.make_backend`;
            the masks are the same, so it is not part of the provenance record).
        onnx: onnxruntime: a graph written by ``vidseg export`` (an image model's, or a video model's
            ``--step``) to run instead of exporting on the fly.
        onnx_cache: onnxruntime: folder of the exported graphs (default: the user cache).
        compile: torch: ``torch.compile`` the backbone (semantic models; ``prepare_for_inference(compile=True)``).
        pipeline: read frames and write outputs on helper threads (:mod:`vidseg.inference.pipeline`).
    """

    benchmark: str
    root: Path
    split: str
    model: str
    weights: str | None
    out: Path
    settings: InferenceSettings | None = None
    tta: bool = False
    evaluate: bool = False
    device: str = "cpu"
    davis_year: str = "2017"
    strict_weights: bool = True
    overwrite: bool = False
    progress: bool = True
    backend: str = "torch"
    onnx: str | None = None
    onnx_cache: str | None = None
    compile: bool = False  # noqa: A003 - the option's name
    pipeline: bool = True


def check_task(benchmark: str, model: str) -> None:
    """The model's task must be the benchmark's (VSPW semantic, VIPSeg panoptic, DAVIS object)."""
    task = get_entry(model).task
    if task != TASK_OF[benchmark]:
        raise ConfigError(f"model {model!r} is a {task} model; {benchmark} needs a model of task "
                          f"{TASK_OF[benchmark]!r} (see 'vidseg models')")


def record_options(req: PredictRequest) -> dict[str, Any]:
    """The options that change the outputs (for the provenance record)."""
    return {"benchmark": req.benchmark, "split": req.split, "davis_year": req.davis_year,
            "settings": req.settings.to_dict() if req.settings is not None else None, "tta": req.tta,
            "partial_weights": not req.strict_weights}


def build_predictor(req: PredictRequest, device: torch.device) -> Any:
    """Load the model on ``device`` and wrap it in its registered predictor with the test settings.

    Without weights the random initialisation is seeded (0): every rank, and a resumed run, has the same model.
    """
    kwargs = req.settings.model_kwargs if req.settings is not None else {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        model = load_model(req.model, req.weights, strict=req.strict_weights, **kwargs)
    if req.settings is None:
        return make_predictor(req.model, model.to(device))
    # BN folded (this model is never trained), optionally the backbone compiled
    model = prepare_for_inference(model.to(device), copy_model=False, compile=req.compile)
    backend = None if req.backend == "torch" and req.onnx is None else make_backend(
        model, req.backend, onnx=req.onnx, cache_dir=req.onnx_cache, model_name=req.model)
    return make_predictor(req.model, model, device=device, backend=backend,
                          **req.settings.predictor_options(tta=req.tta))


def _evaluate(req: PredictRequest, videos: list) -> dict[str, Any]:
    metrics = score_folder(req.benchmark, req.root, req.split, req.out, davis_year=req.davis_year,
                           progress=req.progress)
    write_json(req.out / "metrics.json", metrics)
    worst = per_video_scores(req.benchmark, req.root, req.out, metrics, videos)
    write_predict_report(req.out / "report.html", req.benchmark, req.model, metrics, worst, videos, req.out)
    return metrics


def _prepare_on_main(req: PredictRequest, info: DistInfo) -> None:
    """Rank 0 checks the folder's provenance; a refusal stops every rank (none waits forever)."""
    problem: VidsegError | None = None
    if info.is_main:
        try:
            record = make_record("predict", req.model, req.weights, record_options(req))
            prepare_output_folder(req.out, record, outputs=output_patterns(req.benchmark), overwrite=req.overwrite)
        except VidsegError as exc:
            problem = exc
    refused = gather_objects(str(problem) if problem is not None else None)[0]
    if problem is not None:
        raise problem
    if refused is not None:
        raise DataError(req.out, f"refused by rank 0: {refused}")


def run_predict(req: PredictRequest) -> dict[str, Any]:
    """Predict (and score) a split on this process's share.

    Every process calls it (one process without torchrun). The videos still to do (no completion marker) are
    balanced over the ranks by frame count, so a resumed run spreads only the remaining work.

    Returns:
        ``{"ranks": [per-rank summary], "resumed_videos": videos already complete, "metrics": dict | None}``;
        only rank 0 gets the metrics.
    """
    check_task(req.benchmark, req.model)
    info: DistInfo = init_distributed("cuda" if req.device == "cuda" else "cpu")
    try:
        videos = list_videos(req.benchmark, req.root, req.split, davis_year=req.davis_year)
        _prepare_on_main(req, info)
        pending = [v for v in videos if not marker_path(req.out, v.name).is_file()]
        share = balance([v.num_frames for v in pending], info.world_size)[info.rank]
        predictor = build_predictor(req, info.device)
        with torch.inference_mode():
            summary = predict_share(req.benchmark, predictor, [pending[i] for i in share], req.out, rank=info.rank,
                                    progress=req.progress, position=info.rank if info.distributed else None,
                                    pipeline=req.pipeline)
        ranks = gather_objects(summary)  # also the barrier: every rank has finished its videos
        result: dict[str, Any] = {"ranks": ranks, "resumed_videos": len(videos) - len(pending), "metrics": None}
        if info.is_main:  # the other ranks end here; rank 0 merges and scores alone (no collective timeout)
            merge_outputs(req.benchmark, videos, req.out)
            write_json(req.out / "predict_summary.json", {**result, "world_size": info.world_size})
            if req.evaluate:
                result["metrics"] = _evaluate(req, videos)
        return result
    finally:
        shutdown_distributed()

