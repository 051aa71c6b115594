"""Checkpoint I/O: official NYU ``.p`` files and this project's ``mammo-robust/1`` checkpoints.

Weight files are untrusted input. Every file is read with ``torch.load(..., weights_only=True,
map_location="cpu")`` only: tensors, plain containers and numbers are rebuilt, and a pickle that names any
other callable is refused with :class:`~core.models.ModelError` before anything in it runs. This covers the
legacy (non-zip, PyTorch 0.4 / 1.1) serialisation of the official files as well as the zip format.

Formats
-------
Official DMV (``sample_image_model.p``, ``ImageOnly__ModeImage_weights.p``, ...)
    ``{"model": state_dict, ...}``; other top-level entries are ignored.
Official GMIC (``sample_model_1.p`` ... ``sample_model_5.p``)
    A plain state dict, plus the unused ``shared_rep_filter.weight`` that is dropped explicitly.
This project (``CHECKPOINT_FORMAT = "mammo-robust/1"``)
    ``{"format": "mammo-robust/1", "arch": "gmic" | "dmv", "variant": str, "config": dict, "state_dict":
    ...}``
    where ``config`` holds plain types only. Keys read by :mod:`core.models.registry` (all optional):
    ``input_size`` ([H, W] for every view, or {"CC": [H, W], "MLO": [H, W]}), ``crop_shape`` ([h, w]), ``K``,
    ``percent_t``, ``spacing_mm`` (pixel spacing the preprocessing resamples to, mm; absent or None = native
    pixels as in the official pipeline), ``downsample`` (factor applied to the native image, >= 1),
    ``demo`` (bool), ``training`` (dict: seed, epochs, cohort, AUC, ...). Floating tensors may be stored as
    float16; they are converted to float32 on load.

State dicts are checked key by key before a strict load: a missing, unexpected or wrong-shaped key gives a
``ModelError`` naming the keys. Missing BatchNorm ``num_batches_tracked`` counters (absent from PyTorch 0.4
files) are filled with 0, as PyTorch does for old state dicts.
"""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.models import ModelError

CHECKPOINT_FORMAT = "mammo-robust/1"
GMIC_UNUSED_KEYS = ("shared_rep_filter.weight",)
_MAX_LISTED = 8


@dataclass
class Checkpoint:
    """Weights read from a file, with what is known about them.

    Attributes
    ----------
    arch : str
        ``"gmic"`` or ``"dmv"``.
    variant : str
        GMIC: ``"resnet18"``; DMV: ``"image-only"``, ``"image-heatmaps"``, ``"image-wise"``,
        ``"image-wise-heatmaps"``, ``"single"`` or ``"single-heatmaps"``.
    state_dict : dict
        Tensor per key, float32 for floating tensors.
    config : dict
        The project checkpoint's ``config`` (empty for official files).
    kind : str
        ``"project"`` or ``"official"``.
    source : str
        The file it came from.
    """

    arch: str
    variant: str
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    kind: str = "official"
    source: str = ""


def _short(keys, limit: int = _MAX_LISTED) -> str:
    keys = list(keys)
    text = ", ".join(keys[:limit])
    return text + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _numpy_data_globals() -> list:
    """numpy array, scalar and dtype rebuilders (data only), also under their numpy 1.x names.

    Checkpoints sometimes carry numpy metadata next to the state dict (an epoch counter, a metric); these let
    ``weights_only`` rebuild such values. Nothing that runs code is added.
    """
    import numpy as np

    try:
        from numpy._core import multiarray as ma
    except ImportError:  # numpy < 2
        from numpy.core import multiarray as ma
    items: list = [ma._reconstruct, ma.scalar, np.ndarray, np.dtype]
    items += [
        (ma._reconstruct, "numpy.core.multiarray._reconstruct"),
        (ma.scalar, "numpy.core.multiarray.scalar"),
    ]
    items += sorted({type(np.dtype(c)) for c in "?bBhHiIlLqQefdFDOUS"}, key=lambda t: t.__name__)
    return items


def read_weights_file(path: str | Path) -> Any:
    """Read a weight file as tensors and plain containers only (``weights_only=True``), on the CPU.

    Besides tensors and Python containers and numbers, numpy arrays and scalars are rebuilt as data (see
    :func:`_numpy_data_globals`); any other object in the pickle makes the load fail without running it.

    Raises
    ------
    ModelError
        The file is missing, not a PyTorch file, truncated, or would need to run pickled code.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: weight file not found")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(_numpy_data_globals()):
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        raise ModelError(f"{path}: {_refusal(str(exc), type(exc).__name__)}") from None


def _refusal(text: str, kind: str) -> str:
    """Why a weight file was not loaded, in plain words; never torch's advice to switch the protection off."""
    named = re.search(r"GLOBAL (\S+?)(?:[ :]|$)", text)
    other = re.search(r"Unsupported operand \S+", text)
    if other and not named:
        return f"not a readable PyTorch weight file ({other.group(0).lower()} in its pickle)"
    if "Weights only load failed" in text or named:
        what = f" ({named.group(1)})" if named else ""
        return (
            f"refused to load: the file asks to run code when it is loaded{what}, which is not tensor data; "
            "it was not loaded. A weight file must hold tensors only: ask its author for a state-dict "
            "(tensors) version"
        )
    lines = [ln for ln in text.strip().splitlines() if "weights_only" not in ln]
    first = lines[0].strip() if lines else kind
    return f"not a readable PyTorch weight file ({first[:200]})"


def _as_state_dict(obj: Any, source: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not obj:
        raise ModelError(f"{source}: expected a state dict (a mapping of names to tensors)")
    out: dict[str, torch.Tensor] = OrderedDict()
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ModelError(f"{source}: state dict entry {key!r} is not a named tensor")
        out[key] = value.float() if value.is_floating_point() and value.dtype != torch.float32 else value
    return out


def _infer_official(state_dict: Mapping[str, torch.Tensor], source: str) -> tuple[str, str]:
    if "ds_net.first_conv.weight" in state_dict:
        return "gmic", "resnet18"
    first = state_dict.get("four_view_resnet.cc.first_conv.weight")
    if first is None:
        first = state_dict.get("view_resnet.first_conv.weight")
    if first is None or first.ndim != 4:
        raise ModelError(f"{source}: neither a GMIC nor a DMV state dict (no ds_net / four_view_resnet keys)")
    heatmaps = "-heatmaps" if first.shape[1] == 3 else ""
    if "fc1_cc.weight" in state_dict:
        return "dmv", "image-heatmaps" if heatmaps else "image-only"
    if "fc1_lcc.weight" in state_dict:
        return "dmv", "image-wise" + heatmaps
    if "fc1.weight" in state_dict:
        return "dmv", "single" + heatmaps
    raise ModelError(f"{source}: DMV state dict without a known head (fc1_cc, fc1_lcc or fc1 keys)")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read an official NYU ``.p`` file or a ``mammo-robust/1`` checkpoint.

    Returns
    -------
    Checkpoint
        Architecture and variant (inferred from the keys for official files), float32 state dict, config.
    """
    source = str(path)
    obj = read_weights_file(path)
    if isinstance(obj, Mapping) and "format" in obj:
        if obj.get("format") != CHECKPOINT_FORMAT:
            raise ModelError(
                f"{source}: unknown checkpoint format {obj.get('format')!r}; expected {CHECKPOINT_FORMAT}"
            )
        missing = [k for k in ("arch", "variant", "state_dict") if k not in obj]
        if missing:
            raise ModelError(f"{source}: checkpoint lacks {', '.join(missing)}")
        arch, variant = obj["arch"], obj["variant"]
        if arch not in ("gmic", "dmv") or not isinstance(variant, str):
            raise ModelError(f"{source}: unknown architecture {arch!r} / variant {variant!r}")
        config = obj.get("config") or {}
        if not isinstance(config, Mapping):
            raise ModelError(f"{source}: checkpoint config is not a mapping")
        return Checkpoint(
            arch, variant, _as_state_dict(obj["state_dict"], source), dict(config), "project", source
        )
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]  # official DMV wrapper
    state_dict = _as_state_dict(obj, source)
    arch, variant = _infer_official(state_dict, source)
    return Checkpoint(arch, variant, state_dict, {}, "official", source)


def check_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str
) -> dict[str, torch.Tensor]:
    """Return ``state_dict`` ready for ``model.load_state_dict(..., strict=True)``, or raise naming bad keys.

    Drops GMIC's unused ``shared_rep_filter.weight``, fills absent ``num_batches_tracked`` counters with 0 and
    converts floating tensors to float32. Any other missing, unexpected or wrong-shaped key is a ModelError.
    """
    expected = model.state_dict()
    given = {k: v for k, v in state_dict.items() if k not in GMIC_UNUSED_KEYS}
    missing = [k for k in expected if k not in given]
    for key in [k for k in missing if k.endswith("num_batches_tracked")]:
        given[key] = torch.zeros_like(expected[key])
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in expected]
    wrong = [
        f"{k} {list(given[k].shape)} (expected {list(expected[k].shape)})"
        for k in expected
        if k in given and given[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_short(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {_short(wrong)}")
    if problems:
        raise ModelError(f"{source}: weights do not fit {type(model).__name__}; " + "; ".join(problems))
    return OrderedDict(
        (k, given[k].float() if given[k].is_floating_point() else given[k].to(expected[k].dtype))
        for k in expected
    )


def load_into(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "<state dict>"
) -> nn.Module:
    """Check ``state_dict`` (:func:`check_state_dict`), load it strictly into ``model``, return ``model``."""
    model.load_state_dict(check_state_dict(model, state_dict, source), strict=True)
    return model


def _plain(value: Any, where: str) -> Any:
    """Check that a config holds only plain types (so that it loads with weights_only=True)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, where) for k, v in value.items()}
    raise ModelError(f"{where}: config value {value!r} of type {type(value).__name__} is not a plain type")


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    arch: str,
    variant: str,
    config: Mapping[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write ``model``'s weights as a ``mammo-robust/1`` checkpoint.

    Parameters
    ----------
    path : str or Path
        Output file (parent folders are created).
    model : torch.nn.Module
        The model; its ``state_dict()`` is stored (on the CPU).
    arch, variant : str
        As in :class:`Checkpoint`.
    config : mapping, optional
        Plain types only (see the module docstring for the keys read back).
    half : bool
        Store floating tensors as float16 (halves the file; they load back as float32).
    """
    path = Path(path)
    state: dict[str, torch.Tensor] = OrderedDict()
    converted: dict[tuple, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        # DMV's column aliases share tensors: store each once. The identity must be taken from the model's
        # own tensor (alive for the whole loop), not from a CPU copy of a CUDA tensor: a freed copy's
        # address is reused by the next copy, which would alias two different tensors.
        ident = (str(value.device), value.data_ptr(), tuple(value.shape), value.stride(), value.dtype)
        if ident not in converted:
            copy = value.detach().cpu()
            converted[ident] = copy.half() if half and copy.is_floating_point() else copy
        state[key] = converted[ident]
    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": arch,
        "variant": variant,
        "config": _plain(dict(config or {}), str(path)),
        "state_dict": state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def save_official(
    path: str | Path,
    model: nn.Module,
    arch: str,
    *,
    legacy: bool = True,
    extra_shared_rep_filter: bool = True,
) -> Path:
    """Write ``model``'s weights in the official NYU layout (interoperability and tests).

    DMV: ``{"model": state_dict}``; GMIC: the plain state dict plus a ``shared_rep_filter.weight``
    [256, 256, 4, 4] tensor like the released files (``extra_shared_rep_filter``). ``legacy`` writes the
    pre-1.6 non-zip serialisation of the released files.
    """
    path = Path(path)
    state = OrderedDict((k, v.detach().cpu()) for k, v in model.state_dict().items())
    if arch == "gmic":
        if extra_shared_rep_filter:
            state["shared_rep_filter.weight"] = torch.zeros(256, 256, 4, 4)
        payload: Any = state
    elif arch == "dmv":
        payload = {"model": state}
    else:
        raise ModelError(f"unknown architecture {arch!r}; expected 'gmic' or 'dmv'")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return path
