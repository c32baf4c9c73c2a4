"""Semi-supervised video object segmentation with STCNN, streaming, as the official test (spec §5.5, §5.7).

For every frame t (frame 0 included):

1. the temporal input is ``delta`` earlier frames by the official index table (:func:`stack_indices`): for
   t >= delta the frames t-delta..t-1; for t < delta the frames 0..t (the current frame last) padded on the
   left by repeating frame 0. Stack ``x / 127.5 - 1``; the frame itself ``x / 255`` then ImageNet mean/std;
2. the object probability is ``sigmoid`` of the fused logit;
3. gating: the previous mask (frame 0: the given first-frame mask; later: the previous frame's *gated*
   probability > ``threshold`` = 0.4) is dilated with ``cv2.getStructuringElement(MORPH_ELLIPSE, (80, 80))``;
   when the dilated mask has more than ``min_pixels`` = 50 pixels, the probability is multiplied by it.

Multiple objects (DAVIS 2017): one pass per object, i.e. each object has its own gating chain (and, after
per-object online fine-tuning, its own model). Objects that share a model share its forward pass per frame,
which gives the same numbers as separate passes. Merge rule (ours; the official code is single-object): a
pixel takes the id of the object with the highest gated probability if that probability is above
``threshold``, else background (0); ties go to the smaller id.

Memory is bounded: the predictor keeps the last ``delta`` frames and one mask per object.
A video shorter than ``delta`` frames is refused (the official padding would read frame 0 repeatedly; the
issue asks for an error), as is a first-frame mask of another size than the frames or without any object.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from vidseg.categories import davis_palette
from vidseg.data.transforms import normalize_frames
from vidseg.errors import DataError
from vidseg.fileio import read_image
from vidseg.inference.settings import STCNN_TEST
from vidseg.models.vos.stcnn import STCNN

VOID = 255  # DAVIS "void" label: never an object


def read_first_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a first-frame mask as object ids uint8 [H, W] (0 background, 255 void).

    Accepted: an indexed PNG (the DAVIS format; the indices are the ids), a greyscale mask with values
    {0, 255} or {0, 1} (one object, id 1), or an RGB image whose colours are DAVIS palette colours.

    Raises:
        DataError: unreadable file, a greyscale mask with other values, or RGB colours outside the palette.
    """
    from PIL import Image

    arr = read_image(path)
    with Image.open(path) as img:
        mode = img.mode
    if mode == "P":
        return arr.astype(np.uint8)
    if mode in ("L", "1"):
        values = set(np.unique(arr).tolist())
        if not values <= {0, 1, 255}:
            raise DataError(path, f"greyscale mask has values {sorted(values)[:6]}; expected 0/255 for one object "
                                  "or an indexed (palette) PNG with one id per object")
        return (arr != 0).astype(np.uint8)
    return _ids_from_colours(np.asarray(arr)[..., :3], path)


def _ids_from_colours(rgb: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    palette = davis_palette().astype(np.int64)
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pal_codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    lut = {int(c): i for i, c in reversed(list(enumerate(pal_codes)))}  # first index of a repeated colour
    unique = np.unique(codes)
    unknown = [int(c) for c in unique if int(c) not in lut]
    if unknown:
        c = unknown[0]
        raise DataError(path, f"colour ({c >> 16}, {(c >> 8) & 255}, {c & 255}) is not a DAVIS palette colour "
                              f"({len(unknown)} such colours); save an indexed PNG with one id per object")
    ids = np.zeros(codes.shape, np.uint8)
    for c in unique:
        ids[codes == c] = lut[int(c)]
    return ids


def stack_indices(t: int, delta: int) -> list[int]:
    """Frame indices of the temporal input of frame ``t`` (official ``DAVIS_dataloader`` test table).

    Examples (delta 4): t=0 -> [0,0,0,0]; 1 -> [0,0,0,1]; 2 -> [0,0,1,2]; 3 -> [0,1,2,3]; 7 -> [3,4,5,6].
    """
    if t < delta:
        return [max(0, t - delta + 1 + j) for j in range(delta)]
    return list(range(t - delta, t))


def temporal_stack(frames: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """delta uint8 RGB frames [H, W, 3] -> [1, 3*delta, H, W], clipped to 0..255, ``x / 127.5 - 1``."""
    arr = np.concatenate([np.nan_to_num(np.asarray(f, dtype=np.float32)) for f in frames], axis=2)
    t = torch.from_numpy(np.clip(arr, 0.0, 255.0)).permute(2, 0, 1)[None]
    return (t / 127.5 - 1.0).to(device=device, dtype=dtype)


def normalize_frame(frame: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """uint8 RGB [H, W, 3] -> [1, 3, H, W] by the official test settings
    (:data:`vidseg.inference.settings.STCNN_TEST`: ``x / 255``, then ImageNet mean/std)."""
    norm = STCNN_TEST.norm
    x = normalize_frames(np.asarray(frame, dtype=np.float32), norm.mean, norm.std, norm.input_scale)
    return x[None].to(device=device, dtype=dtype)


def dilate_ellipse(mask: np.ndarray, size: int = 80) -> np.ndarray:
    """Binary dilation with OpenCV's ``size x size`` elliptical element (anchor at its centre, size // 2).

    Args:
        mask: [H, W], nonzero = object.

    Returns:
        uint8 [H, W] in {0, 1}.
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.dilate((np.asarray(mask) > 0).astype(np.uint8), kernel)


def gate(prob: np.ndarray, previous_mask: np.ndarray, *, size: int = 80, min_pixels: int = 50) -> np.ndarray:
    """Multiply ``prob`` [H, W] by the dilated ``previous_mask`` when that has more than ``min_pixels`` pixels."""
    dilated = dilate_ellipse(previous_mask, size)
    if int(dilated.sum()) > min_pixels:
        return prob * dilated
    return prob


def merge_objects(probs: np.ndarray, ids: list[int], threshold: float) -> np.ndarray:
    """Per-pixel id of the most probable object when above ``threshold``, else 0.

    Args:
        probs: [K, H, W] gated probabilities, one map per object in ``ids`` order.
        ids: the K object ids (1..255).
        threshold: background below (or at) this probability.

    Returns:
        uint8 [H, W] object-id mask.
    """
    best = probs.argmax(axis=0)  # first maximum: ties go to the earlier (smaller) id
    out = np.asarray(ids, dtype=np.uint8)[best]
    out[probs.max(axis=0) <= threshold] = 0
    return out


@dataclass
class VosFrame:
    """One segmented frame.

    Attributes:
        index: frame index in the video.
        mask: uint8 [H, W] object ids (0 = background).
        probs: float32 [K, H, W] gated probabilities of the objects, in ``ids`` order.
        ids: the object ids.
        image: the frame itself, uint8 [H, W, 3] (a reference, for overlays).
    """

    index: int
    mask: np.ndarray
    probs: np.ndarray
    ids: list[int]
    image: np.ndarray


class StcnnVosPredictor:
    """Stream a video through STCNN with a first-frame mask; yields one :class:`VosFrame` per frame.

    Args:
        model: one STCNN shared by every object, or ``{object id: STCNN}`` (per-object fine-tuned models).
        threshold: probability threshold for the next frame's gating mask and the merge (0.4).
        dilation: size of the elliptical dilation element (80).
        min_pixels: gate only when the dilated mask has more than this many pixels (50).
        keep_first_mask: emit the given mask for frame 0 instead of its prediction (the official code
            predicts and gates frame 0; the gating chain follows the prediction either way).

    Example::

        predictor = StcnnVosPredictor(model)
        for out in predictor.stream(frames, first_mask, source="video.mp4"):
            save(out.index, out.mask)
    """

    def __init__(self, model: STCNN | Mapping[int, STCNN], *, threshold: float = 0.4, dilation: int = 80,
                 min_pixels: int = 50, keep_first_mask: bool = False) -> None:
        self.model = model
        self.threshold = threshold
        self.dilation = dilation
        self.min_pixels = min_pixels
        self.keep_first_mask = keep_first_mask
        models = list(model.values()) if isinstance(model, Mapping) else [model]
        deltas = {m.frame_nums for m in models}
        if len(deltas) != 1:
            raise ValueError(f"StcnnVosPredictor: the models read different numbers of frames {sorted(deltas)}")
        self.delta = deltas.pop()

    def _model_for(self, obj: int) -> STCNN:
        if isinstance(self.model, Mapping):
            if obj not in self.model:
                raise DataError("<first mask>", f"object id {obj} has no model (models for {sorted(self.model)})")
            return self.model[obj]
        return self.model

    @torch.no_grad()
    def _probability(self, model: STCNN, frames: list[np.ndarray], frame: np.ndarray) -> np.ndarray:
        param = next(model.parameters())
        model.eval()
        logits, _ = model(temporal_stack(frames, param.device, param.dtype),
                          normalize_frame(frame, param.device, param.dtype))
        return torch.sigmoid(logits[-1])[0, 0].float().cpu().numpy()

    def _check_first(self, first_frame: np.ndarray, first_mask: np.ndarray, source: str) -> list[int]:
        if first_mask.shape != first_frame.shape[:2]:
            raise DataError(source, f"first-frame mask is {first_mask.shape[0]}x{first_mask.shape[1]} but the "
                                    f"frames are {first_frame.shape[0]}x{first_frame.shape[1]}")
        ids = [int(i) for i in np.unique(first_mask) if i not in (0, VOID)]
        if not ids:
            raise DataError(source, "first-frame mask has no object (all pixels are background)")
        return ids

    def _head(self, frames: Iterator[np.ndarray], source: str) -> list[np.ndarray]:
        head = []
        for frame in frames:
            head.append(np.asarray(frame))
            if len(head) == self.delta:
                return head
        raise DataError(source, f"video has {len(head)} frames, fewer than the {self.delta} previous frames "
                                "STCNN reads (delta)")

    def stream(self, frames: Iterable[np.ndarray], first_mask: np.ndarray, *, source: str = "<video>",
               mask_source: str = "<first mask>") -> Iterator[VosFrame]:
        """Segment a video.

        Args:
            frames: uint8 RGB frames [H, W, 3], in order (an iterator is consumed lazily).
            first_mask: uint8 [H, W] ids of frame 0 (0 = background, one id per object).
            source, mask_source: names used in error messages.

        Yields:
            :class:`VosFrame` per frame, frame 0 first.

        Raises:
            DataError: fewer than delta frames, a mask of another size, or a mask without objects.
        """
        it = iter(frames)
        head = self._head(it, source)
        first_mask = np.asarray(first_mask)
        ids = self._check_first(head[0], first_mask, mask_source)
        prev_masks = {obj: first_mask == obj for obj in ids}
        history: deque[np.ndarray] = deque(maxlen=self.delta)
        for t, frame in enumerate(_chain(head, it)):
            frame = np.asarray(frame)
            if frame.shape != head[0].shape:
                raise DataError(source, f"frame {t} is {frame.shape} but frame 0 is {head[0].shape}")
            window = [*history, frame] if t < self.delta else list(history)
            window = [window[0]] * (self.delta - len(window)) + window
            probs = self._frame_probs(window, frame, ids, prev_masks)
            prev_masks = {obj: probs[k] > self.threshold for k, obj in enumerate(ids)}
            mask = first_mask.astype(np.uint8) if t == 0 and self.keep_first_mask else \
                merge_objects(probs, ids, self.threshold)
            history.append(frame)
            yield VosFrame(index=t, mask=mask, probs=probs, ids=ids, image=frame)

    def _frame_probs(self, window: list[np.ndarray], frame: np.ndarray, ids: list[int],
                     prev_masks: dict[int, np.ndarray]) -> np.ndarray:
        shared: dict[int, np.ndarray] = {}  # id(model) -> ungated probability, one forward per model
        out = []
        for obj in ids:
            model = self._model_for(obj)
            if id(model) not in shared:
                shared[id(model)] = self._probability(model, window, frame)
            out.append(gate(shared[id(model)], prev_masks[obj], size=self.dilation, min_pixels=self.min_pixels))
        return np.stack(out).astype(np.float32)


def _chain(head: list[np.ndarray], rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield from head
    yield from rest
