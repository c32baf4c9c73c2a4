"""Losses beside the models: cross-entropy with ignore, deep-supervision weighting, STSC's consistency loss.

* :func:`seg_cross_entropy`: logits are bilinearly upsampled to the label size (as every official head
  does), pixels labelled 255 are ignored, and a batch whose pixels are all ignored gives 0 (not NaN).
* :func:`weighted_terms`: the loss-dict convention of :class:`vidseg.models.base.VideoSegmenter`.
* :func:`stcl_loss` / :func:`balanced_sample`: the spatial-temporal consistency loss of STSC (paper 004,
  eq. 1-2) on a bounded, class-balanced sample of pixels (our choice; see docs/models.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch.nn import functional as F

IGNORE_INDEX = 255


def seg_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Mean pixel cross-entropy.

    Args:
        logits: [N, K, h, w], upsampled bilinearly (align_corners=False) to the label size if needed.
        labels: [N, H, W] integer classes, ``ignore_index`` = ignore.

    Returns:
        scalar: the mean over non-ignored pixels (0 with a gradient path if none is labelled).
    """
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    labels = labels.long()
    total = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="sum")
    count = (labels != ignore_index).sum()
    return total / count.clamp(min=1)


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
