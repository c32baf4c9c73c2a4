"""Dataset tools: layout checks (:mod:`.check`), statistics (:mod:`.stats`) and format conversion (:mod:`.convert`)."""
