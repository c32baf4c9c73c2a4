"""Command-line interface: thin argument parsing on top of the library (``vidseg <command>``)."""
