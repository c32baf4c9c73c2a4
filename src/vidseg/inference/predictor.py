"""Streaming video inference with a bounded per-frame feature cache.

``VideoPredictor(model).predict(video)`` reads a video (file, frame folder or iterator of uint8 [H, W, 3]
frames) one frame at a time and yields one :class:`FramePrediction` per frame, in order.

How it works: the clip of every target comes from the model's test rule (:mod:`vidseg.inference.rules`):
CFFM ``[t-9, t-6, t-3, t]`` with the official clips of the first frames, TCB online ``t-d`` or offline
``t+d`` (past near the end), image models ``[t]``. Each frame is encoded by ``model.encode_frame`` at most
once (per TTA view) and its features are kept in a :class:`~vidseg.inference.cache.FrameCache` only as long
as a later clip can use them: ``back + ahead + 1`` frames, where ``back`` / ``ahead`` is how far the rule
reaches (CFFM 10 frames, TCB offline 19). The target is decoded by ``model.decode_clip`` from the cached
features, so the result equals ``model.forward`` on the stacked clip (tested to 1e-5). Memory therefore does
not grow with the video length. ``model.reset_state()`` is called at the start of every video.

Offline mode (TCB's future supports) decides target t once frame ``t + ahead`` has arrived, or at the end of
the stream, so outputs lag the input by ``ahead`` frames.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidseg.data.sampling import ClipSampler
from vidseg.data.transforms import NORMALIZATIONS, Normalization
from vidseg.data.video import FrameFolder, open_video
from vidseg.errors import DataError
from vidseg.inference.backend import Backend, TorchBackend
from vidseg.inference.cache import FrameCache
from vidseg.inference.fast_argmax import upsample_argmax
from vidseg.inference.pipeline import read_ahead as read_ahead_frames
from vidseg.inference.rules import Reach, rule_for_model, rule_reach
from vidseg.inference.tta import TTA, Variant, logits_to_probs, prepare_view, resize_view, variant_size

VideoInput = str | os.PathLike | Iterable[np.ndarray]
SkipFn = Callable[[int, str], bool]


@dataclass
class FramePrediction:
    """The prediction of one frame.

    Attributes:
        index: 0-based frame index in the video.
        name: frame name (the file stem for frame folders, ``%08d`` of index + 1 otherwise, as VSPW names).
        clip: frame indices the model used (target last); empty when skipped.
        labels: argmax classes, uint8 [H, W] (int32 when there are more than 256 classes); None if skipped.
        logits: float32 [K, H, W] when requested and no TTA is used.
        probs: float32 [K, H, W] softmax (averaged over TTA views) when requested.
        image: the input frame uint8 [H, W, 3] when requested.
        skipped: True when the caller asked to skip this target (e.g. its output already exists).
    """

    index: int
    name: str
    clip: tuple[int, ...] = ()
    labels: np.ndarray | None = None
    logits: torch.Tensor | None = None
    probs: torch.Tensor | None = None
    image: np.ndarray | None = None
    skipped: bool = False


def iter_video(video: VideoInput) -> Iterator[tuple[np.ndarray, str]]:
    """(frame uint8 [H, W, 3], name) pairs from a video file, a frame folder or an iterable of frames."""
    if isinstance(video, str | os.PathLike):
        source = open_video(video)
        paths = source.frames if isinstance(source, FrameFolder) else None
        for i, frame in enumerate(source):
            yield frame, (Path(paths[i]).stem if paths is not None else f"{i + 1:08d}")
        return
    for i, frame in enumerate(video):
        yield frame, f"{i + 1:08d}"


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


class VideoPredictor:
    """Segment videos frame by frame with a :class:`vidseg.models.base.VideoSegmenter`.

    Args:
        model: the model (put in eval mode here).
        mode: ``"online"`` (causal) or ``"offline"`` (may use future frames: TCB's official test rule).
        device: where to run; default the model's device. The model is moved there.
        tta: multi-scale / flip test-time augmentation, or None.
        img_scale: (long, short) keep-ratio test resize (CFFM: (853, 480)); None feeds frames as they are.
        size_divisor: stretch the model input to a multiple of this (CFFM: 32); with ``img_scale`` this is the
            official two-step ``AlignedResize`` (:func:`vidseg.inference.tta.resize_view`).
        normalization: input normalisation (:data:`vidseg.data.transforms.NORMALIZATIONS`; TCB's official test
            uses ``"torchvision"``).
        short_video: TCB offline: ``"clamp"`` or ``"wrap"`` (the official loader) for supports before frame 0.
        rule: override the clip rule (a sampler from :mod:`vidseg.data.sampling`).
        return_logits: attach logits [K, H, W] to each prediction (single view only).
        return_probs: attach softmax probabilities [K, H, W].
        keep_images: attach the input frame.
        fast_argmax: when only labels are wanted (one unflipped view, no logits / probabilities), compute the
            labels in cache-sized row bands without full-size logits
            (:func:`vidseg.inference.fast_argmax.upsample_argmax`; the same labels as
            the plain path, which resizes all logits, then takes the argmax (of the probabilities when the model
            input size differs from the frame's)). False: the plain path (for comparisons).
        backend: what runs the encoder and decoder (:mod:`vidseg.inference.backend`; e.g.
            ``make_backend(model, "onnxruntime")``); None: the PyTorch model.

    Example::

        predictor = VideoPredictor(build("cffm_b0").eval())
        for pred in predictor.predict("street.mp4"):
            save(pred.name, pred.labels)
    """

    def __init__(self, model: torch.nn.Module, *, mode: str = "online", device: str | torch.device | None = None,
                 tta: TTA | None = None, img_scale: tuple[int, int] | None = None, size_divisor: int = 1,
                 normalization: Normalization = NORMALIZATIONS["mmseg"], short_video: str = "clamp",
                 rule: ClipSampler | None = None, return_logits: bool = False, return_probs: bool = False,
                 keep_images: bool = False, fast_argmax: bool = True, backend: Backend | None = None) -> None:
        self.model = model if device is None else model.to(device)
        self.model.eval()
        self.device = _model_device(self.model) if device is None else torch.device(device)
        self.mode = mode
        self.rule = rule if rule is not None else rule_for_model(model, mode, short_video)
        self.normalization = normalization
        self.reach: Reach = rule_reach(self.rule)
        self.tta = tta
        self.variants: list[Variant] = tta.variants() if tta is not None else [Variant()]
        self.img_scale = img_scale
        self.size_divisor = int(size_divisor)
        self.return_logits = return_logits
        self.return_probs = return_probs
        self.keep_images = keep_images
        self.fast_argmax = fast_argmax
        self.backend: Backend = backend if backend is not None else TorchBackend(self.model)
        self.last_stream: VideoStream | None = None

    @property
    def cache_capacity(self) -> int:
        """Most frames the cache can hold: ``back + ahead + 1``."""
        return self.reach.back + self.reach.ahead + 1

    def stream(self, skip: SkipFn | None = None, *, force_probs: bool = False) -> VideoStream:
        """A push-style stream for one video (``push(frame)`` / ``finish()``); resets the model's state."""
        stream = VideoStream(self, skip, force_probs=force_probs)
        self.last_stream = stream
        return stream

    def predict(self, video: VideoInput, *, skip: SkipFn | None = None,
                read_ahead: int = 0) -> Iterator[FramePrediction]:
        """Predict every frame of ``video``, in order.

        Args:
            video: a video file, a frame folder, or an iterable of uint8 [H, W, 3] frames.
            skip: ``skip(index, name) -> bool``: targets to leave undecoded (their prediction comes back with
                ``skipped=True``); their frames are still encoded when a clip of another target needs them.
            read_ahead: decode up to this many frames ahead on a helper thread
                (:func:`vidseg.inference.pipeline.read_ahead`); 0 reads on the calling thread.
        """
        stream = self.stream(skip)
        for frame, name in read_ahead_frames(iter_video(video), read_ahead):
            yield from stream.push(frame, name)
        yield from stream.finish()


class VideoStream:
    """One video's streaming state: raw frames and per-view features of the frames a later clip may use."""

    def __init__(self, predictor: VideoPredictor, skip: SkipFn | None = None, *, force_probs: bool = False) -> None:
        self.p = predictor
        self.skip = skip
        self.force_probs = force_probs
        cap = predictor.cache_capacity
        self.frames = FrameCache(cap)  # index -> (uint8 frame, name)
        self.features = [FrameCache(cap) for _ in predictor.variants]
        self.num_read = 0
        self.next_target = 0
        self.size: tuple[int, int] | None = None
        self.encoded = 0  # encode_frame calls (all views)
        self.stateful = bool(predictor.model.stateful)
        v0 = predictor.variants[0]
        self.labels_only = (predictor.fast_argmax and len(predictor.variants) == 1 and not v0.flip
                            and not (predictor.return_probs or force_probs or predictor.return_logits))
        predictor.model.reset_state()

    @property
    def peak_cached(self) -> int:
        """Largest number of frames whose features were held at once (over views)."""
        return max([self.frames.peak, *(c.peak for c in self.features)])

    def _check_frame(self, frame: np.ndarray, name: str) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise DataError(name, f"frames must be uint8 [H, W, 3] RGB, got {frame.dtype} {tuple(frame.shape)}")
        if self.size is None:
            self.size = (frame.shape[0], frame.shape[1])
        elif frame.shape[:2] != self.size:
            raise DataError(name, f"frame size {frame.shape[1]}x{frame.shape[0]} differs from the video's "
                            f"{self.size[1]}x{self.size[0]} (WxH)")
        return frame

    def push(self, frame: np.ndarray, name: str | None = None) -> list[FramePrediction]:
        """Add the next frame; returns the predictions that became decidable (in order)."""
        name = name if name is not None else f"{self.num_read + 1:08d}"
        self.frames.put(self.num_read, (self._check_frame(frame, name), name))
        self.num_read += 1
        return self._drain(final=False)

    def finish(self) -> list[FramePrediction]:
        """End of the video: predict the remaining targets."""
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[FramePrediction]:
        out = []
        while self.next_target < self.num_read and (final or self.next_target + self.p.reach.ahead < self.num_read):
            out.append(self._predict(self.next_target))
            self.next_target += 1
            oldest = self.next_target - self.p.reach.back
            self.frames.evict_before(oldest)
            for cache in self.features:
                cache.evict_before(oldest)
        return out

    def _features(self, view: int, index: int) -> Any:
        cache = self.features[view]
        feats = cache.get(index)
        if feats is None:
            v = self.p.variants[view]
            frame = self.frames[index][0]
            view = resize_view(frame, v.scale, self.p.img_scale, self.p.size_divisor)
            x = prepare_view(view, v.flip, self.p.normalization, device=self.p.device)
            feats = self.p.backend.encode_frame(x)
            self.encoded += 1
            cache.put(index, feats)
        return feats

    def _trim(self, index: int) -> None:
        """After frame ``index`` was decoded as a target, keep only what it contributes as a support."""
        for cache in self.features:
            if index in cache:
                cache.put(index, self.p.backend.support_features(cache[index]))

    @torch.inference_mode()
    def _predict(self, t: int) -> FramePrediction:
        frame, name = self.frames[t]
        image = frame if self.p.keep_images else None
        skipped = self.skip is not None and self.skip(t, name)
        if skipped and not self.stateful:
            return FramePrediction(t, name, image=image, skipped=True)
        try:
            clip = tuple(int(i) for i in self.p.rule.test_clip(t, self.num_read))
        except IndexError as exc:  # e.g. TCB's official rule on a video of fewer than 9 frames
            raise DataError(name, f"no test clip for frame {t} of a {self.num_read}-frame video: {exc}") from None
        size = (frame.shape[0], frame.shape[1])
        if self.labels_only:
            return self._predict_labels(t, clip, size, image, skipped)
        views = []
        for k, v in enumerate(self.p.variants):
            feats = [self._features(k, i) for i in clip]
            vsize = variant_size(size, v.scale, self.p.img_scale, self.p.size_divisor)
            views.append((v, self.p.backend.decode_clip(feats, vsize)))
        self._trim(t)
        if skipped:  # stateful model: decoded only to keep its state as in an uninterrupted run
            return FramePrediction(t, name, clip, image=image, skipped=True)
        labels, logits, probs = self._combine(views, size)
        return FramePrediction(t, name, clip, labels, logits=logits, probs=probs, image=image)

    def _predict_labels(self, t: int, clip: tuple[int, ...], size: tuple[int, int], image: np.ndarray | None,
                        skipped: bool) -> FramePrediction:
        """One unflipped view, labels only: low-resolution logits -> :func:`upsample_argmax` (same labels)."""
        name = self.frames[t][1]
        vsize = variant_size(size, 1.0, self.p.img_scale, self.p.size_divisor)
        low = self.p.backend.decode_clip_lowres([self._features(0, i) for i in clip], vsize)
        self._trim(t)
        if skipped:
            return FramePrediction(t, name, clip, image=image, skipped=True)
        # as _combine: argmax of the logits when the model decodes at the frame size, else of the probabilities
        labels = upsample_argmax(low[:1], [vsize, size], softmax=vsize != size)
        return FramePrediction(t, name, clip, _label_array(labels, low.shape[1]), image=image)

    def _combine(self, views: list[tuple[Variant, torch.Tensor]], size: tuple[int, int]
                 ) -> tuple[np.ndarray, torch.Tensor | None, torch.Tensor | None]:
        """Labels (and the requested logits / probabilities) from the views' logits [1, K, h, w]."""
        want_probs = self.p.return_probs or self.force_probs
        v0, l0 = views[0]
        direct = len(views) == 1 and not v0.flip and tuple(l0.shape[-2:]) == size
        logits = l0[0].float() if direct else None
        probs = None
        if not direct or want_probs:
            probs = torch.stack([logits_to_probs(lg, size, v.flip)[0] for v, lg in views]).mean(0)
        scores = logits if logits is not None else probs
        labels = _label_array(scores.argmax(0), scores.shape[0])
        return (labels,
                logits.cpu() if (self.p.return_logits and logits is not None) else None,
                probs.cpu() if (want_probs and probs is not None) else None)


def _label_array(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """int64 labels [H, W] -> numpy uint8 (int32 when there are more than 256 classes)."""
    return labels.cpu().numpy().astype(np.uint8 if num_classes <= 256 else np.int32)
