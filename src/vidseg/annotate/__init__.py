"""Annotation tools of the dataset papers: keyframe label propagation (VSPW) and instance association (VIPSeg)."""

from vidseg.annotate.association import InstanceAssociator, associate_pair, instance_iou, track_instances
from vidseg.annotate.propagation import Propagation, propagate_keyframes, warp_labels

__all__ = ["InstanceAssociator", "Propagation", "associate_pair", "instance_iou", "propagate_keyframes", "track_instances", "warp_labels"]
