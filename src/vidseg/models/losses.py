"""Losses beside the models: cross-entropy with ignore, deep-supervision weighting, STSC's consistency loss.

* :class:`PixelLoss`: how a family forms and averages its per-pixel classification loss. ``reduction
  "official"`` reproduces the family's official code (``codebase "mmseg"``: mmsegmentation 0.x
  ``CrossEntropyLoss``, mean over *all* pixels with ignored ones counting 0, used by CFFM, SegFormer and the
  UperNet-Swin/STSC recipes; ``codebase "vspw"``: the TCB/VSPW code, ``log_softmax`` at the head's
  resolution, bilinear upsampling of the log-probabilities, ``NLLLoss(ignore_index=255)`` averaged over the
  labelled pixels of each ``DataParallel`` chunk of ``group_size`` clips, chunks averaged). ``reduction
  "valid"`` is :func:`seg_cross_entropy` for every family. See docs/training.md ("Losses").
* :func:`seg_cross_entropy`: logits are bilinearly upsampled to the label size (as every official head
  does), pixels labelled 255 are ignored, and a batch whose pixels are all ignored gives 0 (not NaN).
* :func:`weighted_terms`: the loss-dict convention of :class:`vidseg.models.base.VideoSegmenter`.
* :func:`stcl_loss` / :func:`balanced_sample`: the spatial-temporal consistency loss of STSC (paper 004,
  eq. 1-2) on a bounded, class-balanced sample of pixels (our choice; see docs/models.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from vidseg.errors import ConfigError

IGNORE_INDEX = 255
REDUCTIONS = ("official", "valid")
CODEBASES = ("mmseg", "vspw")


def _upsample(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def seg_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean pixel cross-entropy over the labelled pixels (``reduction: valid``).

    Args:
        logits: [N, K, h, w], upsampled bilinearly (align_corners=False) to the label size if needed.
        labels: [N, H, W] integer classes, ``ignore_index`` = ignore.

    Returns:
        scalar: the mean over non-ignored pixels (0 with a gradient path if none is labelled).
    """
    logits = _upsample(logits, labels.shape[-2:])
    labels = labels.long()
    total = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
    count = (labels != ignore_index).sum()
    return total / count.clamp(min=1)


def all_pixel_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                            ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """mmsegmentation 0.x cross-entropy: the mean over ALL pixels, ignored pixels counting as 0.

    Equals :func:`seg_cross_entropy` times the fraction of labelled pixels. Because the denominator is the
    pixel count (the same on every process for fixed-size crops), the mean of per-process values is the
    loss of the global batch.

    Args:
        logits: [N, K, h, w], upsampled bilinearly (align_corners=False) to the label size if needed.
        labels: [N, H, W] integer classes, ``ignore_index`` = ignore.

    Returns:
        scalar: sum of the labelled pixels' CE / (N * H * W).
    """
    logits = _upsample(logits, labels.shape[-2:])
    return F.cross_entropy(logits, labels.long(), ignore_index=ignore_index, reduction="none").mean()


def upsampled_log_prob_nll(logits: torch.Tensor, labels: torch.Tensor, group_rows: int = 0,
                           ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """TCB/VSPW code: NLL of bilinearly upsampled log-probabilities, mean over labelled pixels per group.

    ``log_softmax`` is taken at the logits' own resolution (1/8 for TCB), the log-probabilities are
    upsampled to the label size, and ``NLLLoss(ignore_index)`` averages over the labelled pixels of each
    group of ``group_rows`` consecutive rows (one ``DataParallel`` chunk); the groups are averaged, as
    ``loss.mean()`` over the GPUs' losses does. A group with no labelled pixel contributes 0 (the official
    ``NLLLoss`` gives NaN there).

    Args:
        logits: [N, K, h, w].
        labels: [N, H, W] integer classes, ``ignore_index`` = ignore.
        group_rows: rows per group (0 or >= N: one group, i.e. plain ``NLLLoss``); the last group may be
            smaller, as a ``DataParallel`` scatter's last chunk.

    Returns:
        scalar loss.
    """
    labels = labels.long()
    log_prob = _upsample(F.log_softmax(logits, dim=1), labels.shape[-2:])
    nll = F.nll_loss(log_prob, labels, ignore_index=ignore_index, reduction="none")  # [N, H, W], 0 if ignored
    n = labels.shape[0]
    rows = group_rows if 0 < group_rows < n else n
    group = torch.arange(n, device=labels.device) // rows
    n_groups = -(-n // rows)  # no device sync
    sums = torch.zeros(n_groups, dtype=nll.dtype, device=nll.device).index_add(0, group, nll.flatten(1).sum(1))
    counts = torch.zeros(n_groups, dtype=torch.long, device=labels.device).index_add(
        0, group, (labels != ignore_index).flatten(1).sum(1))
    return (sums / counts.clamp(min=1)).mean()


@dataclass(frozen=True)
class PixelLoss:
    """How a model family forms and averages its per-pixel classification loss.

    Attributes:
        reduction: ``"official"`` (as the family's official code, see ``codebase``) or ``"valid"``
            (:func:`seg_cross_entropy`: CE of upsampled logits, mean over the labelled pixels of the batch).
        codebase: which official code ``"official"`` follows: ``"mmseg"`` (:func:`all_pixel_cross_entropy`)
            or ``"vspw"`` (:func:`upsampled_log_prob_nll`).
        group_size: ``vspw`` only: clips per official GPU (the ``DataParallel`` chunk): 2 for TCB (8 clips on
            4 GPUs), 4 for the VSPW image baselines (8 images on 2 GPUs); 0 = the whole batch is one group.

    Example::

        loss = PixelLoss("official", "vspw", group_size=2)
        ce = loss(logits, labels)                      # logits [B, K, h, w], labels [B, H, W]
        aux = loss(aux_logits, clip_labels, rows_per_clip=4)  # [B*T, K, h, w], clip-major rows
    """

    reduction: str = "official"
    codebase: str = "mmseg"
    group_size: int = 0

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise ConfigError(f"loss reduction must be one of {', '.join(REDUCTIONS)}, got {self.reduction!r}")
        if self.codebase not in CODEBASES:
            raise ConfigError(f"loss codebase must be one of {', '.join(CODEBASES)}, got {self.codebase!r}")
        if self.group_size < 0:
            raise ConfigError(f"loss group_size must be >= 0, got {self.group_size}")

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor, rows_per_clip: int = 1) -> torch.Tensor:
        """Scalar loss of logits [N, K, h, w] against labels [N, H, W] (255 = ignore).

        ``rows_per_clip``: rows of one clip when ``N`` is clips x frames flattened clip-major (so that a
        ``vspw`` group holds ``group_size`` whole clips).
        """
        if self.reduction == "valid":
            return seg_cross_entropy(logits, labels)
        if self.codebase == "mmseg":
            return all_pixel_cross_entropy(logits, labels)
        return upsampled_log_prob_nll(logits, labels, group_rows=self.group_size * rows_per_clip)


def weighted_terms(terms: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> dict[str, torch.Tensor]:
    """Multiply each loss term by its weight (missing weight = 1); terms with weight 0 are dropped.

    Example: ``weighted_terms({"loss_seg": ce, "loss_aux": aux}, {"loss_aux": 0.4})``.
    """
    return {k: v * weights.get(k, 1.0) for k, v in terms.items() if weights.get(k, 1.0) != 0}


def balanced_sample(labels: torch.Tensor, budget: int, generator: torch.Generator | None = None,
                    ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Class-balanced random subset of labelled pixel positions with at most ``budget`` elements.

    Each class present gets a quota of ``max(1, budget // n_classes)`` pixels (all its pixels if it has fewer);
    if the total still exceeds ``budget`` (more classes than budget) a uniform subset is kept.

    Args:
        labels: [N] integer labels of the candidate pixels.
        budget: maximum number of returned positions.
        generator: random generator (for reproducible sampling).

    Returns:
        sorted indices into ``labels`` (int64), none of them ignored.
    """
    valid = labels != ignore_index
    classes = torch.unique(labels[valid])
    if classes.numel() == 0 or budget <= 0:
        return torch.zeros(0, dtype=torch.long, device=labels.device)
    quota = max(1, budget // classes.numel())
    picked = []
    for c in classes:
        idx = torch.nonzero(labels == c).squeeze(1)
        if idx.numel() > quota:
            idx = idx[torch.randperm(idx.numel(), generator=generator, device="cpu")[:quota].to(idx.device)]
        picked.append(idx)
    out = torch.cat(picked)
    if out.numel() > budget:
        out = out[torch.randperm(out.numel(), generator=generator, device="cpu")[:budget].to(out.device)]
    return torch.sort(out).values


def stcl_loss(anchors: torch.Tensor, anchor_labels: torch.Tensor, contrast: torch.Tensor,
              contrast_labels: torch.Tensor, anchor_in_contrast: torch.Tensor | None = None,
              temperature: float = 0.07) -> torch.Tensor:
    """Spatial-temporal consistency loss, paper 004 eq. (1)-(2), on given embeddings.

    For anchor ``i`` with label ``c``: positives ``P_i`` = contrast items with label ``c`` (the anchor itself
    excluded), negatives ``N_i`` = items with another label, and
    ``L(i) = 1/|P_i| sum_{p in P_i} -log( e^{i.p/tau} / (e^{i.p/tau} + sum_{n in N_i} e^{i.n/tau}) )``;
    the loss is the mean of ``L(i)`` over anchors that have at least one positive.

    Args:
        anchors: [Na, D] embeddings (L2-normalised by the caller).
        anchor_labels: [Na] labels.
        contrast: [Nc, D] embeddings (pixels of frames t and t+k).
        contrast_labels: [Nc] labels.
        anchor_in_contrast: [Na] position of each anchor inside ``contrast`` (excluded from its own
            positives), or -1 / None when the anchor is not in the contrast set.
        temperature: tau (0.07 in the paper).

    Returns:
        scalar loss (0 with a gradient path when no anchor has a positive).
    """
    logits = anchors @ contrast.t() / temperature  # [Na, Nc]
    same = anchor_labels[:, None] == contrast_labels[None, :]
    pos = same.clone()
    if anchor_in_contrast is not None:
        rows = torch.nonzero(anchor_in_contrast >= 0).squeeze(1)
        pos[rows, anchor_in_contrast[rows]] = False
    neg = ~same
    shift = logits.detach().max(dim=1, keepdim=True).values
    z = logits - shift
    exp = torch.exp(z)
    neg_sum = (exp * neg).sum(dim=1, keepdim=True)
    log_prob = z - torch.log(exp + neg_sum)
    npos = pos.sum(dim=1)
    has = npos > 0
    if not bool(has.any()):
        return logits.sum() * 0.0
    per_anchor = -log_prob.masked_fill(~pos, 0.0).sum(dim=1)[has] / npos[has]
    return per_anchor.mean()
