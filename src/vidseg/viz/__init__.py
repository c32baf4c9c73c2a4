"""vidseg.viz."""
