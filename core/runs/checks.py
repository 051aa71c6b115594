"""Checks a run passes before it is queued, so that the command line and the app refuse at once, with a
message, what would otherwise fail in the worker later: weights that are missing, unreadable or of
another architecture, and (for runs started from the app) files outside the allowed folders."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from core.errors import ExplorerError, RunError
from core.models.demo_weights import DEMO_LABELS, demo_path
from core.runs.config import RunConfig

LABELS = (*DEMO_LABELS, "random")  # weights that are names, not files


def check_weights(config: RunConfig) -> None:
    """Refuse weights the run could not load: a missing file, a file that is not a tensors-only checkpoint,
    or weights of another architecture or layout than ``config.model``.

    ``"random"`` passes; ``"demo"`` and ``"demo-fast"`` pass when the shipped demo file is installed. A file
    is loaded the way the worker will load it (:func:`core.models.create_model` on the CPU, tensors only), so
    its keys and shapes are checked too; this takes about a second for the official weights.

    Raises
    ------
    RunError
        Naming the weights and the problem.
    """
    weights, arch = config.weights, config.model
    if weights == "random":
        return
    if weights in DEMO_LABELS:
        demo = demo_path(arch, weights)  # where core.models.create_model looks
        if not demo.is_file():
            raise RunError(
                f"{demo}: the {weights} weights for {arch.upper()} are not installed; train them "
                f"(`mammo-robust train {arch} ...`) or give a weights file"
            )
        return
    if weights == "imported":
        raise RunError(
            "weights 'imported' only label imported score tables; a run needs demo, demo-fast, random or a "
            "weights file"
        )
    path = Path(weights)
    if not path.exists():
        raise RunError(f"{weights}: weights file not found")
    if not path.is_file():
        raise RunError(f"{weights}: not a regular file, so not a weights file")
    from core.models import create_model

    try:
        create_model(arch, weights, device="cpu")
    except ExplorerError as exc:
        raise RunError(f"weights for {arch.upper()}: {exc}") from None


def check_access(config: RunConfig, roots: Iterable[str | Path]) -> None:
    """Refuse a weights file or manifest outside ``roots`` (:func:`core.access.allowed_roots`): what a run
    started from the app may read. Raises :class:`core.errors.AccessError`."""
    from core.access import check_allowed
    from core.phantom.cohort import PRESETS

    roots = list(roots)
    if config.weights not in (*LABELS, "imported"):
        check_allowed(config.weights, roots)
    if config.manifest not in PRESETS:
        check_allowed(config.manifest, roots)
