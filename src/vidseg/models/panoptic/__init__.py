"""Video panoptic segmentation: Clip-PanoFCN (and PanopticFCN as its one-frame case)."""
