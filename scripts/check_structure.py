"""The structure checks of the developers' guide: the import graph and the sizes of modules and functions.

``python3 scripts/check_structure.py`` prints

* import cycles between modules of ``core`` and ``explorer`` (every ``import`` counts, also those inside
  functions), and between the packages of ``core`` (``core.models``, ``core.runs``...);
* imports that break the layering of ``docs/architecture.md``: ``core`` importing streamlit or
  ``explorer``; ``core.models`` importing anything but inference (no cohort, imaging, perturbation,
  metrics, training, runs or command-line module); a module of the chain (file -> imaging -> perturb ->
  models -> runs -> metrics -> explorer) importing ``core.training``, which is a client beside it;
* modules of ``core`` and ``explorer`` over 500 lines, and their functions over 80 lines. A function may be
  longer only with its reason in a comment on the line directly above its ``def`` (or above its first
  decorator): ``# long function: <why it is one function>``; such functions are listed with their reason.
  Modules have no such exception. The other Python folders (``tests``, ``benchmarks``, ``scripts``) are
  measured too and listed, but not held to the limits.

It exits with status 1 when there is a cycle, a layering violation, a module of the packages over 500 lines
or a function of theirs over 80 lines without a reason. ``tests/test_architecture.py`` runs the same
checks.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "explorer")
#: Measured and listed, not held to the size limits.
OTHER_FOLDERS = ("tests", "benchmarks", "scripts")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
#: Start of the comment, directly above a ``def``, that gives the reason for a longer function.
LONG_FUNCTION_MARK = "# long function:"

#: What ``core.models`` (inference only) must never import.
MODELS_FORBIDDEN = (
    "core.phantom",
    "core.manifest",
    "core.imaging",
    "core.perturb",
    "core.metrics",
    "core.training",
    "core.runs",
    "core.cli",
)


def modules(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the project's packages (or other folders)."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The modules ``name`` imports (project modules and third-party top-level names)."""
    known = set(known)
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, path.name == "__init__.py", node)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
    return out


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Import edges between project modules (third-party names kept as they are)."""
    mods = modules(root)
    return {name: imports(name, path, mods) - {name} for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def package_of(module: str) -> str:
    """The package of a module: ``core.models.gmic`` -> ``core.models``, ``explorer.x`` -> ``explorer``."""
    parts = module.split(".")
    return "explorer" if parts[0] == "explorer" else ".".join(parts[:2])


def package_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for src, targets in edges.items():
        a = package_of(src)
        out.setdefault(a, set())
        for t in targets:
            if t.split(".")[0] in PACKAGES and package_of(t) != a:
                out[a].add(package_of(t))
    return out


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(edges: dict[str, set[str]]) -> list[str]:
    """Layering problems, one line each."""
    out = []
    for src, targets in sorted(edges.items()):
        for t in sorted(targets):
            if _within(src, "core") and (t.split(".")[0] in ("streamlit", "explorer")):
                out.append(f"{src} imports {t}: core never imports the UI")
            if _within(src, "core.models") and any(_within(t, f) for f in MODELS_FORBIDDEN):
                out.append(f"{src} imports {t}: core.models is inference only")
            if _within(t, "core.training") and not (
                _within(src, "core.training") or _within(src, "core.cli") or src.startswith("explorer")
            ):
                out.append(f"{src} imports {t}: training is a client of the chain, not part of it")
    return out


def long_functions(text: str, module: str) -> list[tuple[int, str, str]]:
    """``(lines, "module.function (line N)", reason)`` of the functions of ``text`` over the limit, longest
    first; ``reason`` is the text after :data:`LONG_FUNCTION_MARK` above the ``def``, ``""`` without one."""
    lines = text.splitlines()
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            if length > MAX_FUNCTION_LINES:
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                above = lines[first - 2].strip() if first >= 2 else ""
                reason = (
                    above[len(LONG_FUNCTION_MARK) :].strip() if above.startswith(LONG_FUNCTION_MARK) else ""
                )
                out.append((length, f"{module}.{node.name} (line {node.lineno})", reason))
    return sorted(out, reverse=True)


def sizes(
    root: Path = ROOT, packages: Iterable[str] = PACKAGES
) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
    """(modules over the line limit as (lines, name), functions over it as (lines, name, reason)), longest
    first; see :func:`long_functions`."""
    long_modules, functions = [], []
    for name, path in modules(root, packages).items():
        text = path.read_text()
        n = len(text.splitlines())
        if n > MAX_MODULE_LINES:
            long_modules.append((n, name))
        functions += long_functions(text, name)
    return sorted(long_modules, reverse=True), sorted(functions, reverse=True)


def size_problems(long_modules: list[tuple[int, str]], functions: list[tuple[int, str, str]]) -> list[str]:
    """The size limits broken, one line each: every long module, every long function without a reason."""
    out = [f"module {m}: {n} lines (limit {MAX_MODULE_LINES})" for n, m in long_modules]
    out += [
        f"function {f}: {n} lines (limit {MAX_FUNCTION_LINES}), no reason given"
        for n, f, r in functions
        if not r
    ]
    return out


def _print_sizes(
    long_modules: list[tuple[int, str]], functions: list[tuple[int, str, str]], indent: str = ""
) -> None:
    modules_text = ", ".join(f"{m} ({n})" for n, m in long_modules) or "none"
    print(f"{indent}modules over {MAX_MODULE_LINES} lines: {modules_text}")
    print(f"{indent}functions over {MAX_FUNCTION_LINES} lines: " + ("none" if not functions else ""))
    for n, f, reason in functions:
        print(f"{indent}  {n:4d}  {f}" + (f"  (reason: {reason})" if reason else "  (no reason given)"))


def main() -> int:
    edges = graph()
    module_cycles = cycles(edges)
    package_cycles = cycles(package_graph(edges))
    bad = violations(edges)
    long_modules, functions = sizes()
    print(f"{len(edges)} modules")
    print(f"import cycles between modules: {module_cycles or 'none'}")
    print(f"import cycles between packages: {package_cycles or 'none'}")
    print("layering: " + ("ok" if not bad else "\n  " + "\n  ".join(bad)))
    _print_sizes(long_modules, functions)
    too_big = size_problems(long_modules, functions)
    print("sizes: " + ("ok" if not too_big else "\n  " + "\n  ".join(too_big)))
    print(f"outside the packages ({', '.join(OTHER_FOLDERS)}), listed but not held to the limits:")
    _print_sizes(*sizes(ROOT, OTHER_FOLDERS), indent="  ")
    return 1 if module_cycles or package_cycles or bad or too_big else 0


if __name__ == "__main__":
    sys.exit(main())
