"""The structure of docs/architecture.md: no import cycle, core.models inference only, training beside the
chain, core never importing the UI, one home for the error classes, and the size limits of the developers'
guide (no module of core or explorer over 500 lines, no function over 80 without a reason in a comment)."""

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


def test_no_module_over_500_lines_and_no_function_over_80_without_a_reason(structure):
    """Every .py file of core and explorer is measured; a longer function needs its reason in a comment."""
    on_disk = [p for package in ("core", "explorer") for p in (REPO / package).rglob("*.py")]
    assert len(structure.modules()) == len(on_disk) > 100  # nothing left out
    long_modules, functions = structure.sizes()
    assert structure.size_problems(long_modules, functions) == []
    assert all(reason for _, _, reason in functions)


def test_the_checker_finds_long_modules_and_functions(tmp_path, structure):
    """The size checks can fail: a 501-line module, an 81-line function, and a reason that excuses only the
    function under it."""
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    source = (
        f"def long_one():\n{body}\n\n\n"
        "# long function: one table of constants, split it and it reads worse\n"
        f"@staticmethod\ndef excused():\n{body}\n"
    )
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "big.py").write_text(source + "\n" * (501 - len(source.splitlines())))
    long_modules, functions = structure.sizes(tmp_path)
    assert long_modules == [(501, "core.big")]
    assert [(n, name.split(" ")[0], bool(reason)) for n, name, reason in functions] == [
        (81, "core.big.long_one", False),
        (81, "core.big.excused", True),
    ]
    problems = structure.size_problems(long_modules, functions)
    assert len(problems) == 2 and "core.big.long_one" in problems[1] and "excused" not in " ".join(problems)


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
