"""What a run keeps of an image it could not score: error records keyed like score rows.

An image that cannot be read, prepared for the model or scored does not stop a run: each of its score keys
``(condition, unit)`` gets an error record instead (see the ``errors`` table of :mod:`core.runs.store`),
with the stage that failed and a message a person can act on. Any engine (the local worker, a distributed
one) builds them with :func:`error_records` and writes them with ``RunStore.add_results``; writing the same
records twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.errors import ExplorerError

STAGES = ("read", "prepare", "score")


class ItemFailure(Exception):
    """One work item (an image or an exam) could not be scored: which image, at which stage, and why.

    Internal to the work functions; never leaves :mod:`core.runs` (it becomes error records).
    """

    def __init__(self, image_id: str, stage: str, message: str) -> None:
        super().__init__(message)
        self.image_id = image_id
        self.stage = stage
        self.message = message


def describe(exc: BaseException) -> str:
    """The message of a failure: the library's own message for an ``ExplorerError``, else the exception's
    type and text (an unexpected failure of one image, kept for the operator)."""
    if isinstance(exc, ExplorerError):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_records(
    item: Any,
    conditions: Sequence[Any],
    *,
    arch: str,
    weights_label: str,
    stage: str,
    message: str,
    image_id: str = "",
) -> list[dict]:
    """Error records of a work item under each condition: one per condition per unit of the item.

    Parameters
    ----------
    item : WorkItem
        The image (GMIC: unit = image id) or exam (DMV: units ``exam|L`` and ``exam|R``) that failed.
    conditions : sequence of Condition
        The conditions it was to be scored under.
    arch, weights_label : str
        The ``model`` and ``weights`` columns.
    stage : {"read", "prepare", "score"}
        Where it failed: the file could not be read, the model cannot use the image, or the forward pass
        failed or gave a non-finite score.
    message : str
        Why, naming the image by its cohort id.
    image_id : str
        The image that failed (for an exam, the view that could not be read; ``""`` when unknown).

    Returns
    -------
    list of dict
        Keys ``condition``, ``unit`` and :data:`core.runs.store.ERROR_COLUMNS`.
    """
    out = []
    for cond in conditions:
        out += unit_errors(item, cond, arch=arch, weights_label=weights_label, stage=stage, message=message,
                           image_id=image_id)  # fmt: skip
    return out


def unit_errors(
    item: Any, cond: Any, *, arch: str, weights_label: str, stage: str, message: str, image_id: str = "",
    lateralities: Sequence[str] | None = None,
) -> list[dict]:  # fmt: skip
    """Error records of one condition of an item: one per unit (or per breast in ``lateralities``)."""
    single = len(item.images) == 1
    if single:
        img = item.images[0]
        units = [(img.image_id, img.laterality, img.view)]
        image_id = image_id or img.image_id
    else:
        units = [(f"{item.key}|{lat}", lat, "") for lat in (lateralities or ("L", "R"))]
    return [
        {
            "condition": cond.key,
            "unit": unit,
            "model": arch,
            "weights": weights_label,
            "perturbation": cond.perturbation,
            "severity": cond.severity,
            "parameter": cond.parameter,
            "seed": cond.seed,
            "exam_id": item.images[0].exam_id if single else item.key,
            "image_id": image_id,
            "laterality": lat,
            "view": view,
            "stage": stage,
            "message": message,
        }  # fmt: skip
        for unit, lat, view in units
    ]
