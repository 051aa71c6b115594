"""The structure of docs/architecture.md: no import cycle, core.models inference only, training beside the
chain, core never importing the UI, and one home for the error classes."""

from __future__ import annotations

import importlib
import importlib.util
import inspect

import pytest

from tests.app_support import REPO


@pytest.fixture(scope="module")
def structure():
    spec = importlib.util.spec_from_file_location("check_structure", REPO / "scripts" / "check_structure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_and_the_layers_hold(structure):
    edges = structure.graph()
    assert "core.models.inputs" in edges and "core.training.loop" in edges  # the graph sees the project
    assert structure.cycles(edges) == []
    assert structure.cycles(structure.package_graph(edges)) == []
    assert structure.violations(edges) == []


def test_the_checker_finds_cycles_and_layer_breaks(structure):
    """The checks can fail: a two-module cycle, core.models importing perturb, runs importing training."""
    assert structure.cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    bad = structure.violations(
        {
            "core.models.gmic": {"core.perturb.fourier"},
            "core.runs.work": {"core.training.loop"},
            "core.display": {"streamlit"},
        }
    )
    assert len(bad) == 3


def test_every_error_class_lives_in_core_errors():
    from core.errors import ExplorerError

    found = {}
    for name in structure_modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, ExplorerError):
                found[obj.__name__] = obj.__module__
    assert len(found) >= 13
    assert {k: v for k, v in found.items() if v != "core.errors"} == {}


def structure_modules() -> list[str]:
    names = []
    for path in sorted((REPO / "core").rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] in ("__init__", "__main__"):
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def test_every_subcommand_module_registers_its_command():
    """A missing or broken subcommand module is an error, never silently left out of the command line."""
    from core.cli import SUBCOMMAND_MODULES, build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) == set(SUBCOMMAND_MODULES)
