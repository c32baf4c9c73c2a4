"""Video object segmentation models: STCNN (temporal coherence + spatial segmentation branches).

Submodules: ``resnet_caffe`` (shared trunk), ``norm`` (the BN modes), ``frame_pred`` (temporal branch and
generator), ``seg_branch`` (spatial branch), ``stcnn`` (the joint model), ``inception`` / ``discriminator``
(adversarial pretraining). Import from the submodules; nothing is imported here.
"""
