"""The ``mammo-robust`` command line.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` to a handler ``(args) -> int``. Handlers import heavy dependencies lazily so
that ``mammo-robust --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from core.errors import ExplorerError

SUBCOMMAND_MODULES = (
    "info",
    "perturb",
    "phantom",
    "manifest",
    "train",
    "predict",
    "explain",
    "run",
    "report",
    "distributions",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammo-robust",
        description="Study how mammogram classifiers (NYU DMV, GMIC) react to perturbations of their input.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"core.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ExplorerError as exc:
        print(f"mammo-robust {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
