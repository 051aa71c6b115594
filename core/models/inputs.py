"""Model inputs without a model: the NYU pipeline at the scale of the weights, as plain arrays.

Input preparation only (no forward pass, no torch model needed): what a CPU worker can do for an image
before the model sees it. :mod:`core.models.forward` runs the models on what this module returns, and
:mod:`core.models.predict` combines the two into one scoring call per architecture.

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
perturbation that makes the background non-zero (noise) breaks the NYU crop, so the crop and window position
of the clean image (:func:`prepare_geometry`, held by :class:`ImageInputs`) are applied to every perturbed
version of it.

Scoring units: GMIC scores one image, DMV one four-view exam (:data:`EXAM_VIEWS`). :func:`gmic_inputs` and
:func:`dmv_inputs` prepare one unit under several pixel versions; the result holds plain arrays and the
names of the results, so it can be made in one process and scored in another.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import ModelError
from core.models import preprocess as pp

#: The four views of a DMV exam, in the order of its inputs and of the official label layout.
EXAM_VIEWS = pp.VIEWS


NYU_REFERENCE_SPACING_MM = 0.1


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
    angle = pp.view_angle(angle, _label(mammogram))
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


def window_offset(crop_shape: tuple[int, int], geometry: Geometry, spec: Any) -> tuple[float, float]:
    """(row, col) to subtract from crop coordinates to get coordinates in the deterministic model window
    (no window noise) of a :func:`crop_for_model` crop; the window may hang over the crop's edges."""
    window = pipeline_params(spec).window[geometry.view]
    row, col = pp.window_origin(tuple(crop_shape), geometry.view, window, geometry.center)
    return float(row), float(col)


def image_to_crop(
    row: float, col: float, image_shape: tuple[int, int], geometry: Geometry
) -> tuple[float, float]:
    """Map pixel ``(row, col)`` of the stored image (of ``image_shape``) to the resampled, cropped and
    flipped frame of :func:`crop_for_model` (pixel centres map to pixel centres)."""
    hs, ws = geometry.resampled_shape
    top, bottom, left, right = geometry.window_location
    rr = (row + 0.5) * hs / image_shape[0] - 0.5 - top
    cc = (col + 0.5) * ws / image_shape[1] - 0.5 - left
    if geometry.laterality == "R":  # right breasts are mirrored to face right
        cc = (right - left) - 1 - cc
    return rr, cc


class ImageInputs:
    """One image ready to be turned into model inputs: the crop and window position of the clean image,
    computed once, applied to any pixel version of it (same shape and spacing).

    Parameters
    ----------
    mammogram : core.imaging.Mammogram
        The clean image (pixels in model units, laterality, view, spacing).
    spec : ModelSpec or model
        What the weights expect (``model.spec``).
    view : str, optional
        ``"L-CC"`` etc., used when the mammogram does not carry laterality/view.

    Raises
    ------
    ModelError
        (a :class:`core.models.preprocess.PreprocessError`) if the breast cannot be cropped; the message
        names the mammogram's ``source_name``.
    """

    def __init__(self, mammogram: Any, spec: Any, *, view: str | None = None) -> None:
        self.pixels, _, _, self.spacing_mm = _fields(mammogram, view)
        self.name = _label(mammogram)
        self.spec = getattr(spec, "spec", spec)
        self.params = pipeline_params(self.spec)
        self.geometry = prepare_geometry(mammogram, self.spec, view=view)

    @property
    def view(self) -> str:
        """``"L-CC"``, ``"R-MLO"``...: the image's place in an exam."""
        return f"{self.geometry.laterality}-{self.geometry.view}"

    def crop(self, pixels: np.ndarray | None = None) -> np.ndarray:
        """The resampled, cropped and flipped version ``pixels`` (default: the clean image) (float32)."""
        img = resample(self.pixels if pixels is None else pixels, self.spacing_mm, self.params)
        if img.shape != tuple(self.geometry.resampled_shape):
            raise ModelError(
                f"{self.name}: the image ({img.shape}) does not match the geometry it is given "
                f"({self.geometry.resampled_shape})"
            )
        top, bottom, left, right = self.geometry.window_location
        return pp.flip_for_model(img[top:bottom, left:right], self.geometry.laterality)

    def window(self, pixels: np.ndarray | None = None) -> np.ndarray:
        """The standardised deterministic model window (rows, cols) float32 of a pixel version."""
        return window_from_crop(self.crop(pixels), self.geometry, self.spec, name=self.name)


@dataclass
class GmicInputs:
    """GMIC inputs of one image under several pixel versions: standardised windows (rows, cols) float32,
    one per version, and the caller's version keys; ``laterality`` names the results."""

    versions: list[Hashable]
    windows: list[np.ndarray]
    laterality: str


@dataclass
class DmvInputs:
    """DMV inputs of one four-view exam under several pixel versions: per version, the crop of each view
    (:data:`EXAM_VIEWS`); :meth:`windows` cuts the (augmented) windows when the model needs them, since a
    version's crops are the same whatever the number of samples."""

    versions: list[Hashable]
    crops: list[dict[str, np.ndarray]]
    geometries: dict[str, Geometry]
    spec: Any
    samples: int = 0
    seed: int = 0

    def windows(self, index: int) -> dict[str, np.ndarray]:
        """Windows of version ``index``: ``{view: (max(samples, 1), rows, cols)}``, the augmentation drawn
        from a fresh ``RandomState(seed)`` (so every version gets the same window noise)."""
        crops = {v: (self.crops[index][v], self.geometries[v]) for v in EXAM_VIEWS}
        return dmv_windows(crops, self.spec, samples=self.samples, rng=np.random.RandomState(self.seed))


def gmic_inputs(image: ImageInputs, versions: Iterable[tuple[Hashable, np.ndarray]]) -> GmicInputs:
    """Standardised GMIC windows of ``image`` for each ``(key, pixels)`` version (consumed one at a time,
    so a generator of perturbed images holds one full-size image at a time)."""
    keys, windows = [], []
    for key, pixels in versions:
        keys.append(key)
        windows.append(image.window(pixels))
    return GmicInputs(keys, windows, image.geometry.laterality)


def dmv_inputs(
    images: Sequence[ImageInputs],
    versions: Iterable[tuple[Hashable, Sequence[np.ndarray]]],
    *,
    samples: int = 0,
    seed: int = 0,
) -> DmvInputs:
    """DMV crops of an exam (four :class:`ImageInputs`, one per view of :data:`EXAM_VIEWS`, in any order)
    for each ``(key, pixels per image)`` version, the pixels in the order of ``images``.

    Raises
    ------
    ModelError
        If the images are not the four views of an exam, or ``samples`` < 0.
    """
    order = [im.view for im in images]
    if sorted(order) != sorted(EXAM_VIEWS):
        raise ModelError(f"a DMV exam needs the views {', '.join(EXAM_VIEWS)}, got {', '.join(order)}")
    if samples < 0:
        raise ModelError(f"DMV samples must be >= 0, got {samples}")
    keys, crops = [], []
    for key, pixels in versions:
        keys.append(key)
        crops.append({im.view: im.crop(px) for im, px in zip(images, pixels, strict=True)})
    geometries = {im.view: im.geometry for im in images}
    return DmvInputs(keys, crops, geometries, images[0].spec, samples, seed)


def dmv_windows(
    crops: Mapping[str, tuple[np.ndarray, Geometry]], spec: Any, *, samples: int, rng: np.random.RandomState
) -> dict[str, np.ndarray]:
    """The windows of one exam's crops: ``{view: (max(samples, 1), rows, cols)}`` float32.

    ``samples=0``: one window without noise. Otherwise, per sample and view in :data:`EXAM_VIEWS` order,
    ``rng`` gives ``randint(0, 1)`` (which image of the view, as the official exam lists may hold several)
    and then the window's location and size noise (spec 1.5).
    """
    augment = samples > 0
    windows: dict[str, list[np.ndarray]] = {v: [] for v in EXAM_VIEWS}
    for _ in range(max(samples, 1)):
        for v in EXAM_VIEWS:
            crop, geo = crops[v]
            if augment:
                rng.randint(0, 1)
            windows[v].append(window_from_crop(crop, geo, spec, rng=rng, augment=augment, name=v))
    return {v: np.stack(w) for v, w in windows.items()}
