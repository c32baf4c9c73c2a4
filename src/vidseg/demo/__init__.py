"""The ``vidseg demo`` pipeline, one package: data and sizes (:mod:`.data`), training and evaluation runs
(:mod:`.runs`) and the HTML report (:mod:`.report`).

A new demo part (e.g. panoptic or VOS) adds a module here with its own run function and contributes
:class:`vidseg.viz.report.Section` objects through :func:`vidseg.demo.report.write_demo_report`'s
``extra_sections``. Importing this package loads nothing (``vidseg --help`` reads :class:`.data.DemoSize`).
"""
