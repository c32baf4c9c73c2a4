"""Models: backbones, image baselines, video models (TCB, CFFM, STSC), losses and checkpoint converters.

``load_model(name, weights=None, num_classes=124, **overrides)`` builds any registered model and loads local
weights (official layouts converted); ``build(name, ...)`` only builds. The registry entry of each name
(:data:`MODELS`) states its family, task, converter, test rule, official test settings (``official_settings(name)``) and
predictor.
"""

from vidseg.models.registry import (
    MODELS,
    ModelEntry,
    available_models,
    build,
    get_entry,
    load_model,
    make_predictor,
    official_settings,
)

__all__ = ["MODELS", "ModelEntry", "available_models", "build", "get_entry", "load_model", "make_predictor",
           "official_settings"]
