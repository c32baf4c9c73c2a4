"""Annotation tools of the dataset papers: instance association across frames (VIPSeg)."""

from vidseg.annotate.association import associate_pair, instance_iou, track_instances

__all__ = ["associate_pair", "instance_iou", "track_instances"]
