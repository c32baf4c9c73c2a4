"""vidseg.data."""
