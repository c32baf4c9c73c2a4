"""vidseg.flow."""
