"""Models: backbones, image baselines, video models (TCB, CFFM, STSC), losses and checkpoint converters.

``build(name, num_classes=124, **overrides)`` constructs any registered model by name.
"""

from vidseg.models.registry import MODELS, available_models, build

__all__ = ["MODELS", "available_models", "build"]
