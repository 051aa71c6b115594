"""One entry point for the classifiers: ``create_model("gmic" | "dmv", weights=...)``, timm style.

``weights`` is ``"demo"`` or ``"demo-fast"`` (``assets/weights/<name>-demo[-fast].pt``, trained by this
project on the synthetic cohort at 0.1 mm and 0.3 mm: :mod:`core.models.demo_weights`), a path to an official
NYU ``.p`` file, a path to a ``mammo-robust/1`` checkpoint, or ``None`` (random initialisation, for training
and tests). The returned module is in eval mode, on CUDA when available, and carries a :class:`ModelSpec`
as ``model.spec`` describing what the weights expect.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.models import ModelError
from core.models import dmv as dmv_mod
from core.models import gmic as gmic_mod
from core.models.demo_weights import demo_path, is_demo_label
from core.models.weights import Checkpoint, load_checkpoint, load_into

# variant -> (class, input channels)
DMV_VARIANTS: dict[str, tuple[type[nn.Module], int]] = {
    "image-only": (dmv_mod.SplitBreastModel, 1),
    "image-heatmaps": (dmv_mod.SplitBreastModel, 3),
    "image-wise": (dmv_mod.ImageBreastModel, 1),
    "image-wise-heatmaps": (dmv_mod.ImageBreastModel, 3),
    "single": (dmv_mod.SingleImageBreastModel, 1),
    "single-heatmaps": (dmv_mod.SingleImageBreastModel, 3),
}
_DMV_ALIASES = {"view-wise": "image-only", "view-wise-heatmaps": "image-heatmaps"}
GMIC_VARIANTS = ("resnet18",)


@dataclass(frozen=True)
class ModelSpec:
    """What a model and its weights expect.

    Attributes
    ----------
    arch : str
        ``"gmic"`` or ``"dmv"``.
    variant : str
        ``"resnet18"`` (GMIC); DMV: a key of ``DMV_VARIANTS``.
    weights : str
        Label of the weights: ``"demo"``, ``"demo-fast"``, the file name, or ``"random"``.
    is_demo : bool
        True for the demo weights trained on the synthetic cohort (the UI labels them as such).
    input_size : dict
        Model input ``(H, W)`` in pixels per view angle, keys ``"CC"`` and ``"MLO"``.
    in_channels : int
        1 (image) or 3 (DMV image + benign + malignant heatmaps).
    crop_shape : (int, int) or None
        GMIC ROI patch size in input pixels.
    K : int or None
        GMIC patches per image.
    percent_t : float or None
        GMIC top-t fraction for ``y_global``.
    spacing_mm : float or None
        Pixel spacing (mm) the preprocessing resamples images to before the NYU pipeline; None = native pixels
        (the official pipeline, which never resizes).
    downsample : float
        Factor by which native images are reduced before the NYU pipeline (1 = official).
    view : str or None
        The view of a DMV single-image model ("L-CC", ...).
    config : dict
        The checkpoint's full config (training information included); empty for official files.
    """

    arch: str
    variant: str
    weights: str
    is_demo: bool
    input_size: dict[str, tuple[int, int]]
    in_channels: int = 1
    crop_shape: tuple[int, int] | None = None
    K: int | None = None
    percent_t: float | None = None
    spacing_mm: float | None = None
    downsample: float = 1.0
    view: str | None = None
    config: dict[str, Any] = field(default_factory=dict, compare=False)

    def input_size_for(self, view: str) -> tuple[int, int]:
        """Input ``(H, W)`` for a view such as ``"L-CC"``, ``"R-MLO"``, ``"CC"`` or ``"MLO"``."""
        angle = view.upper().split("-")[-1]
        if angle not in self.input_size:
            raise ModelError(f"{self.arch}: no input size for view {view!r}")
        return self.input_size[angle]


def _pair(value: Any, what: str, source: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ModelError(f"{source}: config {what} must be [height, width], got {value!r}") from None
    if h < 1 or w < 1:
        raise ModelError(f"{source}: config {what} must be positive, got {value!r}")
    return h, w


def _input_size(config: Mapping[str, Any], default: Mapping[str, tuple[int, int]], source: str):
    value = config.get("input_size")
    if value is None:
        return dict(default)
    if isinstance(value, Mapping):
        sizes = {str(k).upper(): _pair(v, f"input_size[{k}]", source) for k, v in value.items()}
        if set(sizes) != {"CC", "MLO"}:
            raise ModelError(f"{source}: config input_size needs the keys CC and MLO, got {sorted(sizes)}")
        return sizes
    size = _pair(value, "input_size", source)
    return {"CC": size, "MLO": size}


def _gmic(variant: str | None, config: Mapping[str, Any], source: str) -> tuple[nn.Module, dict[str, Any]]:
    variant = variant or "resnet18"
    if variant not in GMIC_VARIANTS:
        raise ModelError(f"gmic: unknown variant {variant!r}; known: {', '.join(GMIC_VARIANTS)}")
    crop = _pair(config.get("crop_shape", gmic_mod.OFFICIAL_CROP_SHAPE), "crop_shape", source)
    k = int(config.get("K", gmic_mod.OFFICIAL_K))
    percent_t = float(config.get("percent_t", 0.02))
    model = gmic_mod.GMIC(crop_shape=crop, K=k, percent_t=percent_t)
    size = _input_size(
        config, {"CC": gmic_mod.OFFICIAL_INPUT_SIZE, "MLO": gmic_mod.OFFICIAL_INPUT_SIZE}, source
    )
    return model, dict(
        variant=variant, input_size=size, crop_shape=crop, K=k, percent_t=percent_t, in_channels=1
    )


def _dmv(variant: str | None, config: Mapping[str, Any], source: str) -> tuple[nn.Module, dict[str, Any]]:
    variant = _DMV_ALIASES.get(variant or "image-only", variant or "image-only")
    if variant not in DMV_VARIANTS:
        raise ModelError(f"dmv: unknown variant {variant!r}; known: {', '.join(DMV_VARIANTS)}")
    cls, channels = DMV_VARIANTS[variant]
    size = _input_size(config, dmv_mod.OFFICIAL_INPUT_SIZE, source)
    return cls(channels), dict(variant=variant, input_size=size, in_channels=channels)


_BUILDERS: dict[str, Callable[[str | None, Mapping[str, Any], str], tuple[nn.Module, dict[str, Any]]]] = {
    "gmic": _gmic,
    "dmv": _dmv,
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return sorted(_BUILDERS)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None or ``"auto"``: CUDA when present, else the CPU; otherwise ``"cpu"``, ``"cuda"``, ``"cuda:N"``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} asked for, but CUDA is not available here")
    return target


def build_model(
    name: str, variant: str | None = None, config: Mapping[str, Any] | None = None, *, view: str | None = None
) -> nn.Module:
    """A randomly initialised model in training mode, on the CPU, with ``model.spec`` (weights ``"random"``).

    ``config`` takes the keys of a project checkpoint's config (``input_size``, ``crop_shape``, ``K``,
    ``percent_t``, ``spacing_mm``, ``downsample``); training code builds its model here and saves it with
    :func:`core.models.weights.save_checkpoint` and the same config.
    """
    config = dict(config or {})
    model, info = _builder(name)(variant, config, "config")
    model.spec = _spec(name, info, "random", False, config, view)
    return model


def _builder(name: str):
    key = str(name).lower()
    if key not in _BUILDERS:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return _BUILDERS[key]


def _spec(name: str, info: Mapping[str, Any], label: str, is_demo: bool, config: Mapping[str, Any], view):
    spacing = config.get("spacing_mm")
    return ModelSpec(
        arch=name.lower(),
        weights=label,
        is_demo=is_demo,
        spacing_mm=None if spacing is None else float(spacing),
        downsample=float(config.get("downsample", 1.0)),
        view=view,
        config=dict(config),
        **info,
    )


def create_model(
    name: str,
    weights: str | Path | None = "demo",
    *,
    device: str | torch.device | None = None,
    variant: str | None = None,
    view: str | None = None,
    fast: bool = True,
    channels_last: bool | None = None,
) -> nn.Module:
    """Build DMV or GMIC with weights, in eval mode, on CUDA when available (else the CPU).

    Parameters
    ----------
    name : {"gmic", "dmv"}
        Architecture.
    weights : "demo", "demo-fast", path, or None
        This project's demo weights (:mod:`core.models.demo_weights`: 0.1 mm, official sizes; 0.3 mm); a
        file, read as tensors only: an official NYU ``.p`` (DMV ``{"model": state_dict}``, GMIC plain state
        dict) or a ``mammo-robust/1`` checkpoint; ``None`` or ``"random"``: random initialisation.
    device : str or torch.device, optional
        Where to put the model; default CUDA if available, else CPU.
    variant : str, optional
        DMV: ``"image-only"`` (view-wise, default), ``"image-heatmaps"``, ``"image-wise"``,
        ``"image-wise-heatmaps"``, ``"single"``, ``"single-heatmaps"``; by default the variant the weights
        file holds. GMIC: ``"resnet18"``.
    view : str, optional
        For DMV ``"single"`` from image-wise weights: which view's column and head to take ("L-CC", ...).
    fast, channels_last : bool
        ``fast`` (default): the fast inference path, weights in ``channels_last`` memory format and the
        forward passes of :mod:`core.models.forward` on ``channels_last`` inputs (on CUDA pinned memory,
        and ``autocast(float16)`` for GMIC): 1.3-1.6x faster at the official sizes on the CPU
        (``benchmarks/bench_models.py``), probabilities within 1e-5 (``tests/test_fast_inference.py``).
        ``False``: the exact path (contiguous float32, what the official code computes on the same
        backend). ``channels_last``, its former name, overrides it when given. ``model.fast_inference``.

    Returns
    -------
    torch.nn.Module
        With attribute ``spec`` (:class:`ModelSpec`).

    Raises
    ------
    ModelError
        Unknown name or variant, missing demo weights, unreadable or unsafe file, weights of another
        architecture, or keys that do not fit.
    """
    key = str(name).lower()
    build = _builder(key)
    target = resolve_device(device)
    if weights is None or (isinstance(weights, str) and weights == "random"):
        model, info = build(variant, {}, "random")
        model.spec = _spec(key, info, "random", False, {}, view)
        return _place(model, target, fast if channels_last is None else channels_last)

    is_demo_name = is_demo_label(weights)
    if is_demo_name:
        path = demo_path(key, weights)
        if not path.is_file():
            raise ModelError(
                f"{path}: the {weights} weights for {key} are missing; train them (`mammo-robust train "
                f"{key} --cohort demo ...`) or pass the path of an official or project checkpoint"
            )
    else:
        path = Path(weights)
    ckpt = load_checkpoint(path)
    if ckpt.arch != key:
        raise ModelError(f"{path}: these are {ckpt.arch} weights, not {key}")
    state_dict, ckpt_variant = _adapt(ckpt, key, variant, view, path)
    config = dict(ckpt.config)
    if key == "gmic" and ckpt.kind == "official" and "percent_t" not in config:
        match = re.search(r"model_(\d)", path.name)
        if match and int(match.group(1)) in gmic_mod.PERCENT_T_BY_MODEL:
            config["percent_t"] = gmic_mod.PERCENT_T_BY_MODEL[int(match.group(1))]
    model, info = build(ckpt_variant, config, str(path))
    load_into(model, state_dict, str(path))
    label = weights if is_demo_name else path.name
    is_demo = bool(config.get("demo", is_demo_name))
    model.spec = _spec(key, info, label, is_demo, config if ckpt.kind == "project" else {}, view)
    return _place(model, target, fast if channels_last is None else channels_last)


def _place(model: nn.Module, device: torch.device, fast: bool) -> nn.Module:
    model = model.eval().to(device)
    if fast:
        model = model.to(memory_format=torch.channels_last)
    model.fast_inference = bool(fast)
    return model


def _adapt(ckpt: Checkpoint, key: str, variant: str | None, view: str | None, path: Path):
    """The state dict and variant to build, converting image-wise DMV weights to a single-image model."""
    if variant is None:
        return ckpt.state_dict, ckpt.variant
    wanted = _DMV_ALIASES.get(variant, variant) if key == "dmv" else variant
    if wanted == ckpt.variant:
        return ckpt.state_dict, wanted
    if key == "dmv" and wanted.startswith("single") and ckpt.variant.startswith("image-wise"):
        if ckpt.variant.endswith("-heatmaps") != wanted.endswith("-heatmaps"):
            raise ModelError(f"{path}: holds {ckpt.variant} weights, which cannot make a {wanted} model")
        if view is None:
            raise ModelError(
                f"{path}: a single-image DMV model from image-wise weights needs view='L-CC' (etc.)"
            )
        return dmv_mod.SingleImageBreastModel.state_dict_from_image_wise(ckpt.state_dict, view), wanted
    raise ModelError(f"{path}: holds {key} {ckpt.variant} weights, not {wanted}")
