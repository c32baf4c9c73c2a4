"""vidseg.models.video."""
