"""vidseg.inference."""
