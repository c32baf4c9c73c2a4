"""vidseg.annotate."""
