"""Model inputs and predictions: GMIC per image, DMV per breast.

The NYU pipeline of :mod:`core.models.preprocess` is applied at the scale the weights expect
(``model.spec``, a :class:`core.models.registry.ModelSpec`):

* Official weights (``spec.spacing_mm is None`` and ``spec.downsample == 1``): the stored pixels are used as
  they are, with the NYU constants (erosion 100 px, buffer 50 px, DMV noise 100 px) and the official windows.
* Reduced-size demo weights: the image is first resampled to ``spec.spacing_mm`` (from the mammogram's own
  spacing) or reduced by ``spec.downsample``, with an antialiased bilinear filter whose weights are
  non-negative (so the background stays exactly 0 away from the breast). The NYU pixel constants are divided
  by the scale factor ``f = spacing_mm / 0.1`` (the NYU images have about 0.1 mm pixels) or ``f = downsample``
  and rounded; the window is ``spec.input_size``. Everything else (crop, flip, optimal centre, noise,
  bicubic resize, standardisation) is unchanged.

Perturbations are applied by the caller to ``mammogram.pixels`` in model units, before this pipeline. A
perturbation that makes the background non-zero (noise) breaks the NYU crop; pass the geometry of the clean
image (:func:`prepare_geometry`) to apply the same crop and window to the perturbed pixels.

DMV test-time augmentation: by default each exam gets its own ``numpy.random.RandomState(seed)``, so an exam's
scores do not depend on which other exams are in the call (same numbers one by one or batched). The official
script uses one generator for the whole run; ``shared_rng=True`` reproduces that stream. Per sample and
per view (L-CC, R-CC, L-MLO, R-MLO) the generator gives ``randint(0, 1)``, ``uniform(size=2)`` and
``uniform(size=4)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.models import ModelError
from core.models import preprocess as pp

NYU_REFERENCE_SPACING_MM = 0.1
DMV_LABELS = ("left_benign", "right_benign", "left_malignant", "right_malignant")


@dataclass(frozen=True)
class PipelineParams:
    """Pixel constants of the NYU pipeline at the scale of a model's weights.

    Attributes
    ----------
    scale : float
        Factor by which the stored image is reduced before cropping (1 = official pipeline).
    spacing_mm : float or None
        Target pixel spacing in mm, when the weights ask for one (the image is resampled to it).
    window : dict
        Model input (rows, cols) per view angle ``"CC"``/``"MLO"``.
    erosion_iterations, buffer : int
        Crop constants in pixels of the resampled image (NYU: 100 and 50).
    max_crop_noise : (int, int)
        DMV window location noise in pixels (NYU: (100, 100)).
    max_crop_size_noise : int
        DMV window size noise in pixels (NYU: 100).
    """

    scale: float
    spacing_mm: float | None
    window: dict[str, tuple[int, int]]
    erosion_iterations: int
    buffer: int
    max_crop_noise: tuple[int, int]
    max_crop_size_noise: int


def pipeline_params(spec: Any) -> PipelineParams:
    """The :class:`PipelineParams` of a :class:`~core.models.registry.ModelSpec` (or of a model's spec)."""
    spec = getattr(spec, "spec", spec)
    spacing = getattr(spec, "spacing_mm", None)
    downsample = float(getattr(spec, "downsample", 1.0) or 1.0)
    if spacing is not None:
        if not float(spacing) > 0:
            raise ModelError(f"model spec: spacing_mm must be positive, got {spacing!r}")
        scale = float(spacing) / NYU_REFERENCE_SPACING_MM
    else:
        if downsample < 1:
            raise ModelError(f"model spec: downsample must be >= 1, got {downsample}")
        scale = downsample
    window = {k.upper(): (int(v[0]), int(v[1])) for k, v in dict(spec.input_size).items()}

    def px(value: float) -> int:
        return max(1, int(round(value / scale))) if scale != 1 else int(value)

    return PipelineParams(
        scale=scale,
        spacing_mm=None if spacing is None else float(spacing),
        window=window,
        erosion_iterations=px(pp.EROSION_ITERATIONS),
        buffer=px(pp.CROP_BUFFER),
        max_crop_noise=(px(pp.DMV_MAX_CROP_NOISE[0]), px(pp.DMV_MAX_CROP_NOISE[1])),
        max_crop_size_noise=px(pp.DMV_MAX_CROP_SIZE_NOISE),
    )


def _label(mammogram: Any) -> str:
    return str(getattr(mammogram, "source_name", None) or "mammogram")


def _fields(mammogram: Any, view: str | None = None) -> tuple[np.ndarray, str, str, tuple[float, float]]:
    if not hasattr(mammogram, "pixels"):
        raise ModelError(
            "expected a core.imaging.Mammogram (pixels, laterality, view, spacing_mm), got "
            f"{type(mammogram).__name__}"
        )
    name = _label(mammogram)
    lat = getattr(mammogram, "laterality", None) or (view[0] if view else None)
    angle = getattr(mammogram, "view", None) or (view.split("-")[-1] if view else None)
    if lat is None or angle is None:
        raise ModelError(
            f"{name}: laterality and view are needed (L/R, CC/MLO) to preprocess for the NYU models"
        )
    spacing = getattr(mammogram, "spacing_mm", None) or (NYU_REFERENCE_SPACING_MM, NYU_REFERENCE_SPACING_MM)
    return np.asarray(mammogram.pixels), str(lat), str(angle), (float(spacing[0]), float(spacing[1]))


def resample(pixels: np.ndarray, spacing_mm: tuple[float, float], params: PipelineParams) -> np.ndarray:
    """Resample a stored image to the scale of ``params`` (identity at scale 1); float32 out.

    Antialiased bilinear (triangle filter with non-negative weights): the zero background stays exactly zero
    away from the breast, as the crop needs.
    """
    if params.spacing_mm is None and params.scale == 1:
        return np.asarray(pixels, dtype=np.float32)
    import torch
    import torch.nn.functional as F

    if params.spacing_mm is not None:
        factors = (params.spacing_mm / spacing_mm[0], params.spacing_mm / spacing_mm[1])
    else:
        factors = (params.scale, params.scale)
    h, w = pixels.shape
    shape = (max(1, int(round(h / factors[0]))), max(1, int(round(w / factors[1]))))
    if shape == (h, w):
        return np.asarray(pixels, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[None, None]
    out = F.interpolate(x, size=shape, mode="bilinear", antialias=True, align_corners=False)
    return out[0, 0].numpy()


@dataclass(frozen=True)
class Geometry:
    """Where the model window of one image lies: computed once on the clean image, reusable on perturbed ones.

    Attributes
    ----------
    window_location : (top, bottom, left, right)
        The breast crop in the resampled image.
    laterality, view : str
        ``"L"``/``"R"`` and ``"CC"``/``"MLO"``.
    center : (int, int)
        Optimal window centre on the flipped crop.
    resampled_shape : (int, int)
        Shape of the resampled image the crop refers to.
    """

    window_location: tuple[int, int, int, int]
    laterality: str
    view: str
    center: tuple[int, int]
    resampled_shape: tuple[int, int]


def prepare_geometry(mammogram: Any, spec: Any, *, view: str | None = None) -> Geometry:
    """Crop and optimal centre of one mammogram for a model spec (spec 0.5, 0.6), at the spec's scale.

    Raises
    ------
    PreprocessError
        If the breast cannot be cropped (see :func:`core.models.preprocess.crop_breast`).
    """
    params = pipeline_params(spec)
    pixels, lat, angle, spacing = _fields(mammogram, view)
    angle = pp._view_angle(angle, _label(mammogram))
    img = resample(pixels, spacing, params)
    crop = pp.crop_breast(
        img, lat, erosion_iterations=params.erosion_iterations, buffer=params.buffer, name=_label(mammogram)
    )
    flipped = pp.flip_for_model(crop.pixels, lat)
    center = pp.best_center(
        flipped,
        angle,
        params.window[angle],
        rightmost_x=crop.rightmost_points[1],
        bottommost_y=crop.bottommost_points[0],
        name=_label(mammogram),
    )
    return Geometry(crop.window_location, lat.upper()[:1], angle, center, img.shape)


def crop_for_model(
    mammogram: Any, spec: Any, *, geometry: Geometry | None = None, view: str | None = None
) -> tuple[np.ndarray, Geometry]:
    """The resampled, cropped and flipped image (float32, model units) and its :class:`Geometry`.

    This is everything before the window; :func:`window_from_crop` cuts (possibly augmented) windows from it.
    """
    params = pipeline_params(spec)
    pixels, _, _, spacing = _fields(mammogram, view)
    if geometry is None:
        geometry = prepare_geometry(mammogram, spec, view=view)
    img = resample(pixels, spacing, params)
    if img.shape != tuple(geometry.resampled_shape):
        raise ModelError(
            f"{_label(mammogram)}: the image ({img.shape}) does not match the geometry it is given "
            f"({geometry.resampled_shape})"
        )
    top, bottom, left, right = geometry.window_location
    return pp.flip_for_model(img[top:bottom, left:right], geometry.laterality), geometry


def window_from_crop(
    crop: np.ndarray,
    geometry: Geometry,
    spec: Any,
    *,
    rng: np.random.RandomState | None = None,
    augment: bool = False,
    name: str | None = None,
    standardise: bool = True,
) -> np.ndarray:
    """Standardised model window (rows, cols) float32 from a :func:`crop_for_model` crop (spec 0.7).

    With ``augment`` the DMV location and size noise is drawn from ``rng`` (required then). With
    ``standardise=False`` the window is returned as cut, and the crop may be (rows, cols, channels): auxiliary
    channels (e.g. finding masks) are cut and resized together with the image in channel 0.
    """
    params = pipeline_params(spec)
    if augment and rng is None:
        raise ModelError("augment=True needs a numpy RandomState rng")
    window = pp.extract_window(
        crop,
        geometry.view,
        params.window[geometry.view],
        geometry.center,
        rng=rng,
        max_crop_noise=params.max_crop_noise if augment else (0, 0),
        max_crop_size_noise=params.max_crop_size_noise if augment else 0,
        name=name,
    )
    return pp.standardise(window) if standardise else window


def prepare_input(
    mammogram: Any,
    spec: Any,
    *,
    geometry: Geometry | None = None,
    rng: np.random.RandomState | None = None,
    augment: bool = False,
    view: str | None = None,
) -> np.ndarray:
    """The standardised model input of one mammogram: (rows, cols) float32, window of ``spec.input_size``.

    Parameters
    ----------
    mammogram : core.imaging.Mammogram
        Pixels in model units (already perturbed if wanted), with laterality, view and spacing.
    spec : ModelSpec or model
        What the weights expect (``model.spec``).
    geometry : Geometry, optional
        Crop and centre to use (e.g. from the unperturbed image); computed from ``mammogram`` when None.
    rng : numpy.random.RandomState, optional
        Generator for the DMV augmentation noise (required when ``augment``).
    augment : bool
        Apply DMV's window location and size noise (100 px each at the NYU scale).
    view : str, optional
        ``"L-CC"`` etc., used when the mammogram does not carry laterality/view.
    """
    crop, geometry = crop_for_model(mammogram, spec, geometry=geometry, view=view)
    return window_from_crop(crop, geometry, spec, rng=rng, augment=augment, name=_label(mammogram))


def model_device(model: Any) -> Any:
    """The torch device of a model's parameters (the CPU for a model without any)."""
    import torch

    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def gmic_forward(model: Any, inputs: np.ndarray) -> np.ndarray:
    """GMIC ``y_fusion`` for a batch of prepared inputs ``(N, H, W)``: (N, 2) [benign, malignant] float64."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))[:, None]
    with torch.inference_mode():
        out = model(x.to(model_device(model)))
    return out["y_fusion"].double().cpu().numpy()


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


def dmv_forward(model: Any, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """DMV per-sample probabilities (N, 4) from inputs {view: (N, H, W)}: mean of the CC and MLO heads."""
    import torch

    dev = model_device(model)
    batch = {
        v: torch.from_numpy(np.ascontiguousarray(inputs[v], dtype=np.float32))[:, None].to(dev)
        for v in pp.VIEWS
    }
    with torch.inference_mode():
        out = model(batch)
    cc = torch.exp(out["CC"][..., 1]).double()
    mlo = torch.exp(out["MLO"][..., 1]).double()
    return ((cc + mlo) / 2).cpu().numpy()


def _exam_views(exam: Mapping[str, Any], index: int) -> dict[str, Any]:
    if not isinstance(exam, Mapping):
        raise ModelError(
            f"exam {index}: expected a mapping from 'L-CC', 'R-CC', 'L-MLO', 'R-MLO' to mammograms"
        )
    missing = [v for v in pp.VIEWS if v not in exam]
    if missing:
        raise ModelError(f"exam {index}: missing view(s) {', '.join(missing)}; DMV needs all four")
    for v in pp.VIEWS:
        m = exam[v]
        lat, angle = getattr(m, "laterality", None), getattr(m, "view", None)
        if isinstance(m, tuple):  # (crop, geometry) from crop_for_model
            lat, angle = m[1].laterality, m[1].view
        if (lat and lat != v[0]) or (angle and str(angle).upper() != v[2:]):
            raise ModelError(f"exam {index}: the image under {v} is a {lat}-{angle} view")
    return {v: exam[v] for v in pp.VIEWS}


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
                for v in pp.VIEWS
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
) -> np.ndarray:
    """:func:`predict_dmv` on exams already turned into ``{view: crop_for_model(...)}`` (e.g. cached)."""
    if samples < 0 or batch_size < 1:
        raise ModelError(
            f"predict_dmv: samples must be >= 0 and batch_size >= 1, got {samples}, {batch_size}"
        )
    spec = model.spec
    augment = samples > 0
    n_samples = max(samples, 1)
    shared = np.random.RandomState(seed) if shared_rng else None
    out = np.zeros((len(exams), 4))
    for e, exam in enumerate(exams):
        views = _exam_views(exam, e)
        rng = shared if shared is not None else np.random.RandomState(seed)
        windows: dict[str, list[np.ndarray]] = {v: [] for v in pp.VIEWS}
        for _ in range(n_samples):
            for v in pp.VIEWS:
                crop, geo = views[v]
                if augment:
                    rng.randint(0, 1)  # which image of the view (NYU exam lists may hold several)
                windows[v].append(window_from_crop(crop, geo, spec, rng=rng, augment=augment, name=v))
        total = np.zeros(4)
        for start in range(0, n_samples, batch_size):
            chunk = {v: np.stack(windows[v][start : start + batch_size]) for v in pp.VIEWS}
            total += dmv_forward(model, chunk).sum(axis=0)
        out[e] = total / n_samples
    return out
