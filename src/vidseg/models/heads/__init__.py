"""vidseg.models.heads."""
