"""Every name the packages export resolves, and importing vidseg stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("package", ["vidseg", "vidseg.data", "vidseg.metrics", "vidseg.models", "vidseg.annotate",
                                     "vidseg.flow"])
def test_exports_resolve(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_import_vidseg_does_not_import_torch() -> None:
    code = "import sys, vidseg, vidseg.data, vidseg.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
