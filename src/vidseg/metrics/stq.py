"""Segmentation and Tracking Quality (STQ = sqrt(AQ * IoU)), fed with per-frame pair tables.

Semantics of deeplab2's numpy STQ as used by the VIPSeg driver ``eval_stq_vspw.py`` (spec metrics.md §2.3):

* labels are encoded ``(semantic << bit_shift) + instance``; a semantic value equal to ``ignore_label`` is
  void (mapped to index ``num_classes`` of a (C+1)x(C+1) confusion matrix when ``ignore_label >= C``);
* IoU part: per sequence, the rows of ignore GT are zeroed but the ignore *column* is kept (a pixel
  predicted void on labelled GT is an FN of its class and makes the void "class" count with IoU 0);
  ``mIoU = sum(IoU) / count_nonzero(unions)``; the global value uses the sum of all sequences' matrices;
* AQ part (things only): GT instance 0 of a thing class is crowd, ignored; predicted pixels on GT crowd are
  ignored; tube sizes and intersections are summed over the whole sequence keyed by the full encoded label;
  ``AQ_seq = sum_g 1/|g| sum_p |g n p| IoU(g, p)``; ``AQ = sum_seq AQ_seq / sum_seq #GT tubes``.

Only pair counts are needed: (encoded GT label, encoded predicted label) -> pixels. The accumulation order
of the official dictionaries is reproduced, so the results are bit-identical.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from vidseg.metrics.panoptic_tables import FrameTable, pair_table

_EPSILON = 1e-15


@dataclass
class _Sequence:
    cm: np.ndarray
    gt: dict = field(default_factory=dict)
    pred: dict = field(default_factory=dict)
    inter: dict = field(default_factory=dict)
    length: int = 0


def _add_counts(d: dict, keys: np.ndarray, counts: np.ndarray) -> None:
    uniq, inv = np.unique(keys, return_inverse=True)
    sums = np.bincount(inv, weights=counts, minlength=len(uniq)).astype(np.int64)
    for key, cnt in zip(uniq.tolist(), sums.tolist(), strict=True):
        d[key] = d.get(key, 0) + cnt


class STQAccumulator:
    """Accumulates STQ over frames of one or more sequences.

    Args:
        num_classes: number of semantic classes C (124 for VIPSeg).
        things: class ids that are things.
        ignore_label: semantic value of void (255).
        bit_shift: labels are ``(semantic << bit_shift) + instance``.
    """

    def __init__(self, num_classes: int, things: Iterable[int], ignore_label: int = 255,
                 bit_shift: int = 16) -> None:
        self.num_classes = int(num_classes)
        self.things = np.array(sorted(set(int(t) for t in things)), np.int64)
        self.ignore_label = int(ignore_label)
        self.bit_shift = int(bit_shift)
        self.cm_size = self.num_classes + 1 if self.ignore_label >= self.num_classes else self.num_classes
        self.reset()

    def reset(self) -> None:
        # sequences in first-seen order: open ones hold their tables (_Sequence); finished ones are reduced
        # to (iou_seq, aq_sum, n_tubes, length) and their matrices are summed into _total_cm
        self._seqs: dict[Hashable, _Sequence | tuple[float, float, int, int]] = {}
        self._total_cm = np.zeros((self.cm_size, self.cm_size), np.int64)

    # -- input ------------------------------------------------------------------------------------------
    def _semantic(self, keys: np.ndarray) -> np.ndarray:
        sem = keys >> self.bit_shift
        if self.ignore_label > self.num_classes:
            sem = np.where(sem == self.ignore_label, self.num_classes, sem)
        if sem.size and (sem.min() < 0 or sem.max() >= self.cm_size):
            raise ValueError(f"semantic label {int(sem[(sem < 0) | (sem >= self.cm_size)][0])} outside "
                             f"0..{self.num_classes - 1} and not the ignore label {self.ignore_label}")
        return sem

    def add_pairs(self, gt_keys: np.ndarray, pred_keys: np.ndarray, counts: np.ndarray,
                  sequence_id: Hashable = 0) -> None:
        """Add one frame given as a pair table of encoded labels.

        Args:
            gt_keys: int64 [Q] encoded GT label of each pair.
            pred_keys: int64 [Q] encoded predicted label of each pair.
            counts: int64 [Q] pixels of each pair (a key pair may repeat; counts add up).
            sequence_id: the sequence (video) the frame belongs to.
        """
        seq = self._seqs.get(sequence_id)
        if isinstance(seq, tuple):
            raise ValueError(f"sequence {sequence_id!r} was already finalised")
        gt_keys = np.asarray(gt_keys, np.int64)
        pred_keys = np.asarray(pred_keys, np.int64)
        counts = np.asarray(counts, np.int64)
        if seq is None:
            seq = self._seqs[sequence_id] = _Sequence(np.zeros((self.cm_size, self.cm_size), np.int64))
        seq.length += 1
        np.add.at(seq.cm, (self._semantic(gt_keys), self._semantic(pred_keys)), counts)
        mask = (1 << self.bit_shift) - 1
        gt_thing = np.isin(gt_keys >> self.bit_shift, self.things)
        crowd = gt_thing & ((gt_keys & mask) == 0)
        label_mask = gt_thing & ~crowd
        pred_mask = np.isin(pred_keys >> self.bit_shift, self.things) & ~crowd
        _add_counts(seq.pred, pred_keys[pred_mask], counts[pred_mask])
        _add_counts(seq.gt, gt_keys[label_mask], counts[label_mask])
        both = label_mask & pred_mask
        _add_counts(seq.inter, gt_keys[both] * (1 << 32) + pred_keys[both], counts[both])

    def update(self, y_true: np.ndarray, y_pred: np.ndarray, sequence_id: Hashable = 0) -> None:
        """Add one frame given as encoded label maps [H, W] (``(semantic << bit_shift) + instance``)."""
        y_true = np.asarray(y_true, np.int64)
        y_pred = np.asarray(y_pred, np.int64)
        if y_true.min(initial=0) < 0 or y_pred.min(initial=0) < 0:
            raise ValueError("encoded labels must be non-negative")
        g, p, c = pair_table(y_true, y_pred)
        self.add_pairs(g, p, c, sequence_id)

    # -- per-sequence maths -----------------------------------------------------------------------------
    def _iou_of(self, cm: np.ndarray) -> tuple[np.ndarray, float]:
        """Zero the ignore rows of ``cm`` (in place) and return (cm, mIoU) as the official code does."""
        removal = np.zeros_like(cm)
        removal[np.arange(self.num_classes) if self.cm_size > self.num_classes
                else [i for i in range(self.num_classes) if i != self.ignore_label], :] = 1
        cm *= removal
        inter = cm.diagonal()
        unions = inter + (cm.sum(axis=0) - inter) + (cm.sum(axis=1) - inter)
        n = np.count_nonzero(unions)
        with np.errstate(divide="ignore", invalid="ignore"):
            ious = inter.astype(np.double) / np.maximum(unions, _EPSILON).astype(np.double)
            return cm, np.sum(ious) / n

    @staticmethod
    def _aq_sum(seq: _Sequence) -> float:
        outer = 0.0
        for gt_id, gt_size in seq.gt.items():
            inner = 0.0
            for pr_id, pr_size in seq.pred.items():
                tpa = seq.inter.get(gt_id * (1 << 32) + pr_id)
                if tpa is not None:
                    inner += tpa * (tpa / (tpa + (pr_size - tpa) + (gt_size - tpa)))
            outer += 1.0 / gt_size * inner
        return outer

    def finalize_sequence(self, sequence_id: Hashable) -> None:
        """Reduce a finished sequence to four numbers (its matrix joins the total); frees its tables."""
        seq = self._seqs[sequence_id]
        if isinstance(seq, tuple):
            return
        cm, iou = self._iou_of(seq.cm)
        self._total_cm += cm
        self._seqs[sequence_id] = (float(iou), self._aq_sum(seq), len(seq.gt), seq.length)

    def is_open(self, sequence_id: Hashable) -> bool:
        """Whether ``sequence_id`` has frames and is not finalised."""
        return isinstance(self._seqs.get(sequence_id), _Sequence)

    # -- results ----------------------------------------------------------------------------------------
    def _summaries(self) -> tuple[list, np.ndarray]:
        rows = []
        total = self._total_cm.copy()
        for sid, seq in self._seqs.items():
            if isinstance(seq, _Sequence):
                cm, iou = self._iou_of(seq.cm.copy())
                total += cm
                seq = (float(iou), self._aq_sum(seq), len(seq.gt), seq.length)
            rows.append((sid, seq))
        return rows, total

    def result(self) -> dict:
        """STQ, AQ, IoU (global) and per sequence, with the official formulas.

        Returns:
            {"STQ", "AQ", "IoU", "STQ_per_seq", "AQ_per_seq", "IoU_per_seq", "ID_per_seq",
             "Length_per_seq"}; sequences in the order they were first seen.
        """
        rows, total = self._summaries()
        ids = [sid for sid, _ in rows]
        iou_seq = [r[0] for _, r in rows]
        aq_seq = [r[1] for _, r in rows]
        tubes = [r[2] for _, r in rows]
        lengths = [r[3] for _, r in rows]
        aq_mean = np.sum(np.array(aq_seq, np.float64)) / np.maximum(np.sum(np.array(tubes, np.int64)), _EPSILON)
        aq_per_seq = np.array(aq_seq, np.float64) / np.maximum(np.array(tubes, np.int64), _EPSILON)
        _, iou_mean = self._iou_of(total)
        with np.errstate(invalid="ignore"):
            stq = np.sqrt(aq_mean * iou_mean)
            stq_per_seq = np.sqrt(aq_per_seq * np.array(iou_seq, np.float64))
        return {"STQ": float(stq), "AQ": float(aq_mean), "IoU": float(iou_mean),
                "STQ_per_seq": stq_per_seq.tolist(), "AQ_per_seq": aq_per_seq.tolist(),
                "IoU_per_seq": [float(v) for v in iou_seq], "ID_per_seq": ids, "Length_per_seq": lengths}

    # -- state ------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Finished sequences and the total matrix (open sequences are finalised into the copy)."""
        rows, total = self._summaries()
        return {"done": dict(rows), "total_cm": total}

    def merge(self, state: dict) -> None:
        """Add another accumulator's ``state_dict`` (its sequences come after this one's)."""
        for sid, row in state["done"].items():
            if sid in self._seqs:
                raise ValueError(f"sequence {sid!r} present in both states")
            self._seqs[sid] = tuple(row)
        self._total_cm += np.asarray(state["total_cm"], np.int64)


def stq_keys_for_frame(frame: FrameTable, gt_numbers: dict[int, int], pred_numbers: dict[int, int],
                       bit_shift: int = 16, ignore_label: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Encoded (GT, prediction) labels of the pairs of one VIPSeg frame, as the official driver paints them.

    A pixel whose id is listed in the frame's JSON gets ``(category << bit_shift) + number[id]`` (for an id
    listed twice, the last entry's category, as the painting loop leaves it); any other pixel is void,
    ``(ignore << bit_shift) + ignore``.
    """
    void = (ignore_label << bit_shift) + ignore_label

    def encode(ids: np.ndarray, segs, numbers: dict[int, int]) -> np.ndarray:
        if not len(segs):
            return np.full(ids.shape, void, np.int64)
        rev_ids = segs.ids[::-1]
        uniq, first_rev = np.unique(rev_ids, return_index=True)
        cats = segs.categories[::-1][first_rev]
        nums = np.array([numbers[i] for i in uniq.tolist()], np.int64)
        pos = np.clip(np.searchsorted(uniq, ids), 0, len(uniq) - 1)
        hit = uniq[pos] == ids
        return np.where(hit, (cats[pos] << bit_shift) + nums[pos], void)

    return (encode(frame.gt_ids, frame.gt_segments, gt_numbers),
            encode(frame.pred_ids, frame.pred_segments, pred_numbers))


def instance_numbers(segment_lists: Sequence, start: int = 0) -> dict[int, int]:
    """Number every segment id of a video by first appearance over its frames' JSON lists.

    The official driver starts at 0, so the first segment of a video becomes instance 0 (crowd, if a
    thing); ``start=1`` avoids that (strict protocol).
    """
    numbers: dict[int, int] = {}
    for segs in segment_lists:
        for sid in segs.ids.tolist():
            if sid not in numbers:
                numbers[sid] = len(numbers) + start
    return numbers


def add_video_to_stq(acc: STQAccumulator, frames: Sequence[FrameTable], sequence_id: Hashable,
                     first_instance: int = 0) -> None:
    """Feed one VIPSeg video (its frame tables) into ``acc`` as one sequence and finalise it."""
    gnum = instance_numbers([f.gt_segments for f in frames], first_instance)
    pnum = instance_numbers([f.pred_segments for f in frames], first_instance)
    for f in frames:
        gk, pk = stq_keys_for_frame(f, gnum, pnum, acc.bit_shift, acc.ignore_label)
        acc.add_pairs(gk, pk, f.counts, sequence_id)
    if acc.is_open(sequence_id):
        acc.finalize_sequence(sequence_id)
