"""A command module that fails to import is an error, never a silently missing command."""

from __future__ import annotations

import pytest

from vidseg.cli import eval as eval_cli
from vidseg.cli import main as main_cli


def test_missing_command_module_is_an_error(monkeypatch):
    monkeypatch.setitem(main_cli.COMMANDS, "ghost", "no_such_command_module")
    with pytest.raises(ModuleNotFoundError):
        main_cli.build_parser()


def test_missing_eval_benchmark_module_is_an_error(monkeypatch):
    monkeypatch.setitem(eval_cli.BENCHMARKS, "ghost", "no_such_eval_module")
    with pytest.raises(ModuleNotFoundError):
        main_cli.build_parser()
