"""``--backend``, ``--onnx``, ``--onnx-cache``, ``--compile``, ``--threads`` and ``--no-pipeline``: shared by ``segment``,
``predict`` and ``pseudo-label`` (:mod:`vidseg.inference.backend`, :mod:`vidseg.inference.runtime`,
:mod:`vidseg.inference.pipeline`)."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from typing import Any

from vidseg.cli.argtypes import positive_int

BACKEND_CHOICES = ("torch", "onnxruntime")  # tests/test_backend_onnx.py checks this equals inference.backend.BACKENDS


def add_backend_arguments(parser: argparse.ArgumentParser, *, pipeline: bool = True) -> None:
    """The inference runtime options (and, with ``pipeline``, ``--no-pipeline``)."""
    parser.add_argument("--backend", default="torch", choices=BACKEND_CHOICES,
                        help="what runs the model: torch, or onnxruntime (semantic models; the model is exported to "
                             "ONNX once per input size into --onnx-cache; same masks as torch on the test videos)")
    parser.add_argument("--onnx", default=None, metavar="FILE",
                        help="with --backend onnxruntime: run this file written by 'vidseg export' at the model input "
                             "size instead of exporting (an image model's graph, or a video model's --step file; "
                             "clips the step cannot take, e.g. CFFM's first frames, use graphs exported on the fly)")
    parser.add_argument("--onnx-cache", default=None, metavar="DIR",
                        help="folder of the exported graphs (default $VIDSEG_ONNX_CACHE or ~/.cache/vidseg/onnx)")
    parser.add_argument("--compile", action="store_true",
                        help="with --backend torch: compile the model's backbone with torch.compile (inductor); the "
                             "first frame of each input size pays the compilation (tens of seconds to minutes). On "
                             "the development CPU it gave no speed-up (docs/benchmarks.md); meant for GPUs")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="intra-op threads of torch and onnxruntime (default: OMP_NUM_THREADS if set, else the "
                             "CPUs this process may use, divided among the processes of a torchrun node)")
    if pipeline:
        parser.add_argument("--no-pipeline", action="store_true",
                            help="read frames and write masks on the main thread (by default they run on two "
                                 "helper threads while the model works; the files are the same)")


def check_torch_only(args: argparse.Namespace, model: str, task: str) -> None:
    """Panoptic and object models run on torch only: refuse ``--backend onnxruntime`` / ``--onnx`` on one line."""
    from vidseg.errors import ConfigError

    if getattr(args, "backend", "torch") != "torch" or getattr(args, "onnx", None) is not None:
        raise ConfigError(f"{task} model {model!r} runs on torch only (--backend onnxruntime supports semantic "
                          "models)")
    if getattr(args, "compile", False):
        raise ConfigError(f"--compile supports semantic models, not the {task} model {model!r}")


def check_compile(args: argparse.Namespace) -> bool:
    """Whether ``--compile`` was given; a one-line error when it is combined with onnxruntime."""
    from vidseg.errors import ConfigError

    compile_backbone = bool(getattr(args, "compile", False))
    if compile_backbone and (args.backend != "torch" or args.onnx is not None):
        raise ConfigError("--compile applies to --backend torch (onnxruntime runs its own graph optimisations)")
    return compile_backbone


def prepare_from_args(model: Any, args: argparse.Namespace) -> Any:
    """``model`` prepared for inference in place (BatchNorm folded; ``--compile``: backbone compiled)."""
    from vidseg.inference.runtime import prepare_for_inference

    return prepare_for_inference(model, copy_model=False, compile=check_compile(args))


def backend_from_args(args: argparse.Namespace, model: Any, name: str) -> Any:
    """The backend of a loaded semantic model from the parsed options (None for plain torch)."""
    if args.backend == "torch" and args.onnx is None:
        return None
    from vidseg.inference.backend import make_backend

    return make_backend(model, args.backend, onnx=args.onnx, cache_dir=args.onnx_cache, model_name=name)


@contextlib.contextmanager
def threads_from_args(args: argparse.Namespace) -> Iterator[int]:
    """Within the block, torch's intra-op threads come from ``--threads`` (onnxruntime sessions take the same
    number); the previous count is restored afterwards (the CLI may run in-process, e.g. in tests).

    Default: ``OMP_NUM_THREADS`` when set, else the CPUs this process may use, shared among
    ``LOCAL_WORLD_SIZE`` torchrun processes. Also lets malloc keep freed memory for the next frames
    (:func:`vidseg.inference.runtime.keep_freed_memory`).
    """
    from vidseg.inference.runtime import available_cpus, keep_freed_memory, torch_threads

    keep_freed_memory()

    threads = getattr(args, "threads", None)
    if threads is None and os.environ.get("OMP_NUM_THREADS", "").isdigit():
        threads = max(1, int(os.environ["OMP_NUM_THREADS"]))  # an explicit environment setting is kept
    if threads is None:
        threads = max(1, available_cpus() // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    with torch_threads(threads) as count:
        yield count
