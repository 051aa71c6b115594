"""One scoring call per architecture, and the predictions of the command line.

* :func:`score_image`: GMIC's benign/malignant probabilities for one image under many pixel versions;
* :func:`score_exam`: DMV's per-breast probabilities for one four-view exam under many pixel versions;
* :func:`prepare_unit`: the model inputs of either, without a model (:mod:`core.models.inputs`), and
  :func:`core.models.forward.score_units`, the batched forward pass over a stream of prepared units, for
  callers that prepare in other threads or processes (``core.runs``);
* :func:`predict_gmic` (per image, ensembles) and :func:`predict_dmv` (per breast, NYU test-time
  augmentation): ``mammo-robust predict``.

Results are named (:class:`core.models.forward.Score`: version key, laterality, benign, malignant), so a
caller needs to know nothing of views, windows or label layouts.

DMV test-time augmentation: by default each exam gets its own ``numpy.random.RandomState(seed)``, so an exam's
scores do not depend on which other exams are in the call (same numbers one by one or batched). The official
script uses one generator for the whole run; ``shared_rng=True`` reproduces that stream. Per sample and
per view (L-CC, R-CC, L-MLO, R-MLO) the generator gives ``randint(0, 1)``, ``uniform(size=2)`` and
``uniform(size=4)``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from core.errors import ModelError
from core.lookahead import ordered_map
from core.models.forward import Score, dmv_mean_probs, gmic_forward, score_units
from core.models.inputs import (
    EXAM_VIEWS,
    DmvInputs,
    Geometry,
    GmicInputs,
    ImageInputs,
    crop_for_model,
    dmv_inputs,
    dmv_windows,
    gmic_inputs,
    prepare_input,
)

#: Images per scoring unit: GMIC scores each image on its own, DMV a four-view exam.
UNIT_VIEWS: dict[str, tuple[str, ...] | None] = {"gmic": None, "dmv": EXAM_VIEWS}
#: What one result stands for: an image (GMIC) or a breast (DMV).
RESULT_LEVEL = {"gmic": "image", "dmv": "breast"}


def inputs_per_image(arch: str, *, samples: int = 0) -> int:
    """Model inputs (windows) fed per image and pixel version: GMIC one, DMV ``max(1, samples)``."""
    if arch not in UNIT_VIEWS:
        raise ModelError(f"unknown model architecture {arch!r}")
    return 1 if UNIT_VIEWS[arch] is None else max(1, int(samples))


def prepare_unit(
    images: Sequence[ImageInputs],
    versions: Iterable[tuple[Hashable, Sequence[np.ndarray]]],
    *,
    samples: int = 0,
    seed: int = 0,
) -> GmicInputs | DmvInputs:
    """Model inputs of one scoring unit under several pixel versions, without a model.

    Parameters
    ----------
    images : sequence of ImageInputs
        One image (GMIC) or the four views of an exam in any order (DMV), each prepared for ``model.spec``.
    versions : iterable of (key, pixels per image)
        The pixel versions (model units, same shapes as the images), consumed one at a time.
    samples, seed : int
        DMV augmented windows per view (0: one centred window) and their seed (the same for every version).
    """
    arch = images[0].spec.arch if images else None
    if arch == "gmic":
        if len(images) != 1:
            raise ModelError(f"GMIC scores one image at a time, got {len(images)}")
        return gmic_inputs(images[0], ((key, pixels[0]) for key, pixels in versions))
    if arch == "dmv":
        return dmv_inputs(images, versions, samples=samples, seed=seed)
    raise ModelError(f"prepare_unit: unknown model architecture {arch!r}")


def score_image(
    model: Any,
    mammogram: Any,
    versions: Mapping[Hashable, np.ndarray] | Iterable[tuple[Hashable, np.ndarray]],
    *,
    batch_size: int = 8,
) -> list[Score]:
    """GMIC's probabilities for one image under many pixel versions.

    Parameters
    ----------
    model : GMIC module
        With ``model.spec`` (:func:`core.models.create_model`).
    mammogram : core.imaging.Mammogram
        The clean image: its crop and window position are used for every version.
    versions : mapping or iterable of (key, pixels)
        Pixel versions of the image in model units (e.g. perturbed), same shape.
    batch_size : int
        Versions per forward pass.

    Returns
    -------
    list of Score
        One per version, in order, named by its key.
    """
    items = versions.items() if isinstance(versions, Mapping) else versions
    unit = prepare_unit([ImageInputs(mammogram, model.spec)], ((k, [px]) for k, px in items))
    return next(score_units(model, [(None, unit)], batch_size=batch_size))[1]


def score_exam(
    model: Any,
    exam: Mapping[str, Any],
    versions: Mapping[Hashable, Mapping[str, np.ndarray]]
    | Iterable[tuple[Hashable, Mapping[str, np.ndarray]]],
    *,
    samples: int = 0,
    seed: int = 0,
    batch_size: int = 8,
) -> list[Score]:
    """DMV's per-breast probabilities for one four-view exam under many pixel versions.

    Parameters
    ----------
    model : SplitBreastModel
        With ``model.spec``.
    exam : mapping
        ``"L-CC"``, ``"R-CC"``, ``"L-MLO"``, ``"R-MLO"`` -> clean :class:`core.imaging.Mammogram`.
    versions : mapping or iterable of (key, {view: pixels})
        Pixel versions of the four views in model units.
    samples, seed : int
        Augmented windows per view (0: one centred window) and their seed, the same for every version.
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    list of Score
        Two per version (left breast, then right), in order.
    """
    views = _exam_views(exam, 0)
    images = [ImageInputs(views[v], model.spec, view=v) for v in EXAM_VIEWS]
    items = versions.items() if isinstance(versions, Mapping) else versions
    unit = prepare_unit(
        images, ((k, [px[v] for v in EXAM_VIEWS]) for k, px in items), samples=samples, seed=seed
    )
    return next(score_units(model, [(None, unit)], batch_size=batch_size))[1]


def predict_gmic(
    model_or_models: Any,
    images: Sequence[Any],
    *,
    batch_size: int = 4,
    geometries: Sequence[Geometry] | None = None,
) -> np.ndarray:
    """GMIC probabilities per image.

    Parameters
    ----------
    model_or_models : GMIC module or list of them
        A list (e.g. the five official models) gives the ensemble mean, as ``--model-index ensemble``.
    images : sequence of core.imaging.Mammogram
        Pixels in model units with laterality and view.
    batch_size : int
        Images per forward pass (does not change the result beyond float rounding).
    geometries : sequence of Geometry, optional
        Crop/centre per image (e.g. of the unperturbed images); computed per image when None.

    Returns
    -------
    numpy.ndarray
        (N, 2): [benign, malignant] probabilities in [0, 1].
    """
    models = list(model_or_models) if isinstance(model_or_models, (list, tuple)) else [model_or_models]
    if not models:
        raise ModelError("predict_gmic: no model given")
    if batch_size < 1:
        raise ModelError(f"predict_gmic: batch_size must be >= 1, got {batch_size}")
    images = list(images)
    if geometries is not None and len(geometries) != len(images):
        raise ModelError("predict_gmic: geometries and images differ in length")
    out = np.zeros((len(images), 2))
    for model in models:
        spec = model.spec
        inputs: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
        for i, image in enumerate(images):
            geo = None if geometries is None else geometries[i]
            x = prepare_input(image, spec, geometry=geo)
            inputs.setdefault(x.shape, []).append((i, x))
        for group in inputs.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                probs = gmic_forward(model, np.stack([x for _, x in chunk]))
                out[[i for i, _ in chunk]] += probs
    return out / len(models)


def _exam_views(exam: Mapping[str, Any], index: int) -> dict[str, Any]:
    if not isinstance(exam, Mapping):
        raise ModelError(
            f"exam {index}: expected a mapping from 'L-CC', 'R-CC', 'L-MLO', 'R-MLO' to mammograms"
        )
    missing = [v for v in EXAM_VIEWS if v not in exam]
    if missing:
        raise ModelError(f"exam {index}: missing view(s) {', '.join(missing)}; DMV needs all four")
    for v in EXAM_VIEWS:
        m = exam[v]
        lat, angle = getattr(m, "laterality", None), getattr(m, "view", None)
        if isinstance(m, tuple):  # (crop, geometry) from crop_for_model
            lat, angle = m[1].laterality, m[1].view
        if (lat and lat != v[0]) or (angle and str(angle).upper() != v[2:]):
            raise ModelError(f"exam {index}: the image under {v} is a {lat}-{angle} view")
    return {v: exam[v] for v in EXAM_VIEWS}


def predict_dmv(
    model: Any,
    exams: Sequence[Mapping[str, Any]],
    *,
    samples: int = 10,
    seed: int = 0,
    batch_size: int = 2,
    shared_rng: bool = False,
    geometries: Sequence[Mapping[str, Geometry]] | None = None,
) -> np.ndarray:
    """DMV (view-wise) probabilities per breast, averaged over augmented samples (spec 1.5).

    Parameters
    ----------
    model : SplitBreastModel
        With ``model.spec``.
    exams : sequence of mappings
        Each maps ``"L-CC"``, ``"R-CC"``, ``"L-MLO"``, ``"R-MLO"`` to a :class:`core.imaging.Mammogram`.
    samples : int
        Augmented windows per view (NYU: 10). ``samples=0`` means one window without noise.
    seed : int
        Seed of the ``RandomState`` (per exam, or for the whole call with ``shared_rng``).
    batch_size : int
        Samples per forward pass.
    shared_rng : bool
        One generator for all exams in order, as the official script (an exam's scores then depend on the
        exams before it).
    geometries : sequence of mappings view -> Geometry, optional
        Crop/centre per view (e.g. of the unperturbed exam).

    Returns
    -------
    numpy.ndarray
        (N, 4) probabilities in label order left_benign, right_benign, left_malignant, right_malignant: per
        sample the mean of the CC- and MLO-head probabilities, then the mean over samples.
    """
    exams = list(exams)
    if geometries is not None and len(geometries) != len(exams):
        raise ModelError("predict_dmv: geometries and exams differ in length")
    spec = model.spec
    crops = []
    for e, exam in enumerate(exams):
        views = _exam_views(exam, e)
        crops.append(
            {
                v: crop_for_model(
                    views[v], spec, geometry=None if geometries is None else geometries[e][v], view=v
                )
                for v in EXAM_VIEWS
            }
        )
    return predict_dmv_crops(
        model, crops, samples=samples, seed=seed, batch_size=batch_size, shared_rng=shared_rng
    )


def predict_dmv_crops(
    model: Any,
    exams: Sequence[Mapping[str, tuple[np.ndarray, Geometry]]],
    *,
    samples: int = 10,
    seed: int = 0,
    batch_size: int = 2,
    shared_rng: bool = False,
    workers: int = 1,
) -> np.ndarray:
    """:func:`predict_dmv` on exams already turned into ``{view: crop_for_model(...)}`` (e.g. cached).

    With ``workers`` > 1 (and a generator per exam) the windows of up to ``workers`` exams ahead are cut in
    threads while the model scores the current one; the result is the same.
    """
    if samples < 0 or batch_size < 1:
        raise ModelError(
            f"predict_dmv: samples must be >= 0 and batch_size >= 1, got {samples}, {batch_size}"
        )
    shared = np.random.RandomState(seed) if shared_rng else None

    def windows_of(e: int) -> dict[str, np.ndarray]:
        rng = shared if shared is not None else np.random.RandomState(seed)
        return dmv_windows(_exam_views(exams[e], e), model.spec, samples=samples, rng=rng)

    out = np.zeros((len(exams), 4))
    ahead = 1 if shared is not None else max(1, workers)
    with ThreadPoolExecutor(ahead) as threads:
        for e, windows in enumerate(ordered_map(threads, windows_of, range(len(exams)), ahead)):
            out[e] = dmv_mean_probs(model, windows, batch_size=batch_size)
    return out
