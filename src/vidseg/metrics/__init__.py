"""vidseg.metrics."""
