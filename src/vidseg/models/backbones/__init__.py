"""vidseg.models.backbones."""
