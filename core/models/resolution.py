"""The resolution a model's input has, from its weights' recorded config, without building the model.

Demo and project checkpoints record ``spacing_mm`` (the preprocessing resamples every image to it: the
``"demo"`` weights use 0.1 mm, ``"demo-fast"`` 0.3 mm) or ``downsample``; official NYU files record nothing
and see the images' own pixels (about 0.1 mm for the NYU cohort). The model's Nyquist frequency is
``1 / (2 spacing)``: 5 cycles/mm at 0.1 mm (demo weights; official weights on 0.1 mm images), 1.67 cycles/mm
at 0.3 mm (demo-fast). It is an upper bound: the NYU pipeline later
resizes the breast crop to the input window, which can lower it further.
"""

from __future__ import annotations

import functools
from pathlib import Path

from core.models.demo_weights import demo_path, is_demo_label


@functools.lru_cache(maxsize=32)
def _recorded(path: str, mtime: float, size: int) -> tuple[float | None, float, str]:
    """``(spacing_mm, downsample, arch)`` recorded in a weights file (read as tensors only, once per
    version)."""
    from core.models.weights import load_checkpoint

    checkpoint = load_checkpoint(path)
    config = checkpoint.config
    spacing = config.get("spacing_mm")
    downsample = float(config.get("downsample", 1.0) or 1.0)
    return (None if spacing is None else float(spacing)), downsample, str(checkpoint.arch)


def weights_path(model: str, weights: str | Path) -> Path | None:
    """The file behind a weights value: ``"demo"``, ``"demo-fast"`` -> the installed demo weights; a path
    that exists; else None (e.g. a bare label from a scores table)."""
    if is_demo_label(str(weights)):
        path = demo_path(model, str(weights))
        return path if path.is_file() else None
    path = Path(str(weights))
    return path if path.is_file() else None


def weights_record(model: str, weights: str | Path) -> dict | None:
    """What a weights value names here, to keep with a run: ``{"file", "sha256", "spacing_mm",
    "downsample"}`` (``spacing_mm`` None for weights on native pixels); None when no file of this
    architecture is behind it (``"random"``, a label naming no file, an unreadable file). A stored run that
    keeps it describes its model's input even after ``"demo"`` names other weights."""
    import hashlib

    from core.models import ModelError

    path = weights_path(model, weights) if str(model).lower() in ("gmic", "dmv") else None
    if path is None:
        return None
    try:
        stat = path.stat()
        spacing, downsample, arch = _recorded(str(path), stat.st_mtime, stat.st_size)
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except (ModelError, OSError):
        return None
    if arch != str(model).lower():
        return None
    return {"file": path.name, "sha256": digest.hexdigest(), "spacing_mm": spacing, "downsample": downsample}


def input_spacing(
    model: str,
    weights: str | Path,
    *,
    image_spacing_mm: float | None = None,
    record: dict | None = None,
) -> tuple[float | None, str]:
    """Effective pixel spacing (mm) of what a model with these weights sees, and where it comes from.

    Parameters
    ----------
    model : str
        ``"gmic"`` or ``"dmv"``; anything else (``"radiologist"``) has no model input.
    weights : str or Path
        ``"demo"``, ``"demo-fast"``, ``"random"``, or a weights file; a label that names no file here gives
        None.
    image_spacing_mm : float, optional
        The images' own pixel spacing, for weights that work on native pixels (official, random).
    record : dict, optional
        A :func:`weights_record` kept when the scores were made: used instead of the file the label names
        now.

    Returns
    -------
    (spacing_mm or None, source)
        ``source`` says why, e.g. ``"demo weights resample to 0.3 mm"``. Unreadable files give None with
        the reason; this never raises for a label it cannot resolve.
    """
    from core.models import ModelError

    if str(model).lower() not in ("gmic", "dmv"):
        return None, f"{model}: not a model"
    if record is not None:
        spacing, downsample = record.get("spacing_mm"), float(record.get("downsample") or 1.0)
        what = f"{weights} weights ({record.get('file')}, as recorded by the run)"
    elif str(weights) == "random":
        spacing, downsample, what = None, 1.0, "random weights"
    else:
        path = weights_path(model, weights)
        if path is None:
            return None, f"weights {weights!r} not found here"
        try:
            stat = path.stat()
            spacing, downsample, arch = _recorded(str(path), stat.st_mtime, stat.st_size)
        except (ModelError, OSError) as exc:
            return None, f"{path.name}: {exc}"
        if arch != str(model).lower():
            return None, f"{path.name} holds {arch} weights, not {str(model).lower()}"
        what = f"{weights} weights" if is_demo_label(str(weights)) else path.name
    if spacing is not None:
        return float(spacing), f"{what} resample every image to {float(spacing):g} mm"
    if image_spacing_mm is None:
        return None, f"{what} see native pixels, whose spacing is not known here"
    eff = image_spacing_mm * downsample
    how = f"native {image_spacing_mm:g} mm pixels" + (f" reduced {downsample:g}x" if downsample != 1 else "")
    return eff, f"{what} see {how}"


def spec_input_spacing(
    spec: object, image_spacing_mm: tuple[float, float] | float | None = None
) -> float | None:
    """Pixel spacing (mm) of what a built model sees: its weights' ``spacing_mm`` (every image is resampled
    to it), else the image's coarser spacing times ``downsample`` (native pixels); None when neither is
    known. ``spec`` is a :class:`core.models.registry.ModelSpec` or a model carrying one."""
    spec = getattr(spec, "spec", spec)
    spacing = getattr(spec, "spacing_mm", None)
    if spacing is not None:
        return float(spacing)
    if image_spacing_mm is None:
        return None
    coarser = max(image_spacing_mm) if isinstance(image_spacing_mm, tuple | list) else image_spacing_mm
    return float(coarser) * float(getattr(spec, "downsample", 1.0) or 1.0)


def nyquist_mm(spacing_mm: float) -> float:
    """Nyquist frequency ``1 / (2 spacing)`` in cycles/mm of pixels ``spacing_mm`` apart (0.3 mm: 1.67)."""
    return 1.0 / (2.0 * float(spacing_mm))
